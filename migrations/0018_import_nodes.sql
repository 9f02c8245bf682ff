-- The node running an import (its node.name; NULL for imports of earlier versions or of a
-- store opened outside a daemon), so that a node starting up marks as interrupted only the
-- imports it left running, or that a node no longer up left, never another running node's.
-- Portable as 0001 explains.

ALTER TABLE imports ADD COLUMN node TEXT;
