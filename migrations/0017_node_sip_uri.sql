-- Each node's SIP address (`node.sip_uri`), published in its name row so that a proxy in front
-- of the nodes (Kamailio, asking GET /api/v1/nodes/route) can relay an agent's phone to the
-- node that serves the agent's call tasks. Empty: a node that publishes none (not routed to).
-- Portable as 0001 explains.

ALTER TABLE nodes ADD COLUMN sip_uri TEXT NOT NULL DEFAULT '';
