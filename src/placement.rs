//! Which node serves an agent, when several nodes share one store and a proxy (Kamailio) in
//! front of them relays agents' phones: one rule, the same on every node, so that any node
//! asked (`GET /api/v1/nodes/route`) names the same one.
//!
//! The agents of a call task must be logged in on the node that dials it, so the rule follows
//! the task: the node holding a lease on one of the agent's call tasks (lowest task id first);
//! else the node chosen for the agent's lowest task by rendezvous (highest-random-weight)
//! hashing over the nodes that are up, so that all agents of a task converge on one node,
//! different tasks spread over the nodes, and a node going or coming moves only the tasks it
//! wins or loses. An agent with no call task is placed by its SIP user name.
//!
//! Pure: the caller reads the nodes up, the leases and the agent's tasks from the store. The
//! weights are a fixed hash (FNV-1a, then a 64-bit finaliser), not `std`'s hasher, whose
//! output may change between Rust releases: nodes of different builds must agree.

/// A task id (as stored).
pub type TaskId = i64;

/// The node that should serve an agent with call tasks `tasks` and SIP user name `sip_user`:
/// one of `up` (the names of the nodes up that can be relayed to), or `None` when none is.
/// `leases` are the unexpired task leases as (task, holding node).
pub fn agent_node<'a>(
    sip_user: &str,
    tasks: &[TaskId],
    leases: &[(TaskId, &str)],
    up: &[&'a str],
) -> Option<&'a str> {
    let mut tasks = tasks.to_vec();
    tasks.sort_unstable();
    for task in &tasks {
        let holder = leases.iter().find(|(t, _)| t == task).map(|(_, n)| *n);
        // A holder that is not up (no name row, or none to relay to) is no answer.
        if let Some(node) = holder.and_then(|h| up.iter().find(|n| **n == h)) {
            return Some(node);
        }
    }
    match tasks.first() {
        Some(task) => rendezvous(&format!("task:{task}"), up),
        None => rendezvous(&format!("user:{sip_user}"), up),
    }
}

/// The node of `nodes` with the highest weight for `key` (ties: the lowest name).
pub fn rendezvous<'a>(key: &str, nodes: &[&'a str]) -> Option<&'a str> {
    nodes
        .iter()
        .map(|n| (weight(key, n), std::cmp::Reverse(*n)))
        .max()
        .map(|(_, std::cmp::Reverse(n))| n)
}

/// The weight of `node` for `key`: FNV-1a over both (apart by a NUL), finalised so that
/// nearby inputs give unrelated weights.
fn weight(key: &str, node: &str) -> u64 {
    let bytes: Vec<u8> = key.bytes().chain([0]).chain(node.bytes()).collect();
    finalise(fnv1a(&bytes))
}

/// 64-bit FNV-1a.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// The output function of SplitMix64.
fn finalise(mut h: u64) -> u64 {
    h = (h ^ (h >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    h = (h ^ (h >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    h ^ (h >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    const UP: &[&str] = &["n1", "n2", "n3"];

    #[test]
    fn agents_of_one_task_converge_on_one_node_whatever_else_they_serve() {
        let first = agent_node("ann", &[7], &[], UP).unwrap();
        for (user, tasks) in [("bob", vec![7]), ("cy", vec![9, 7]), ("dee", vec![7, 12])] {
            assert_eq!(agent_node(user, &tasks, &[], UP), Some(first), "{user}");
        }
        // The same answer whatever order the nodes are listed in.
        assert_eq!(
            agent_node("ann", &[7], &[], &["n3", "n1", "n2"]),
            Some(first)
        );
    }

    #[test]
    fn the_node_holding_a_lease_on_the_agents_lowest_leased_task_wins() {
        let hashed = agent_node("ann", &[3, 5], &[], UP).unwrap();
        let other = UP.iter().find(|n| **n != hashed).unwrap();
        // A lease on task 5 only: its holder, though 3 is lower (3 is dialled nowhere).
        assert_eq!(agent_node("ann", &[3, 5], &[(5, other)], UP), Some(*other));
        // Leases on both: the holder of the lower one.
        let third = UP.iter().find(|n| **n != hashed && *n != other).unwrap();
        assert_eq!(
            agent_node("ann", &[5, 3], &[(5, other), (3, third)], UP),
            Some(*third)
        );
        // A lease on a task the agent does not serve changes nothing.
        assert_eq!(agent_node("ann", &[3, 5], &[(4, other)], UP), Some(hashed));
        // A holder that is not up is passed over.
        assert_eq!(agent_node("ann", &[3, 5], &[(3, "gone")], UP), Some(hashed));
    }

    #[test]
    fn tasks_spread_over_the_nodes() {
        let mut per_node: HashMap<&str, usize> = HashMap::new();
        for task in 1..=3000 {
            *per_node
                .entry(agent_node("x", &[task], &[], UP).unwrap())
                .or_default() += 1;
        }
        for n in UP {
            let share = per_node[n];
            assert!((850..=1150).contains(&share), "{per_node:?}");
        }
    }

    #[test]
    fn a_node_going_moves_only_its_own_tasks_and_they_spread_over_the_rest() {
        let survivors = &["n1", "n3"];
        let mut moved: HashMap<&str, usize> = HashMap::new();
        for task in 1..=600 {
            let before = agent_node("x", &[task], &[], UP).unwrap();
            let after = agent_node("x", &[task], &[], survivors).unwrap();
            if before == "n2" {
                *moved.entry(after).or_default() += 1;
            } else {
                assert_eq!(after, before, "task {task}");
            }
        }
        assert!(moved["n1"] > 50 && moved["n3"] > 50, "{moved:?}");
    }

    #[test]
    fn agents_without_tasks_are_placed_by_user_name_and_no_node_is_none() {
        let mut seen = std::collections::HashSet::new();
        for user in ["ann", "bob", "cy", "dee", "eve", "fay", "gus", "hal"] {
            let node = agent_node(user, &[], &[], UP).unwrap();
            assert_eq!(agent_node(user, &[], &[(1, "n1")], UP), Some(node));
            seen.insert(node);
        }
        assert!(seen.len() >= 2, "{seen:?}");
        assert_eq!(agent_node("ann", &[1], &[(1, "n1")], &[]), None);
        assert_eq!(rendezvous("k", &["only"]), Some("only"));
    }

    #[test]
    fn weights_are_the_published_functions_so_every_build_agrees() {
        // FNV-1a's published test vectors.
        assert_eq!(fnv1a(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv1a(b"foobar"), 0x8594_4171_f739_67e8);
        // SplitMix64's first output from seed 0 (its state after one step is the gamma).
        assert_eq!(finalise(0x9e37_79b9_7f4a_7c15), 0xe220_a839_7b1d_cdaf);
        assert_ne!(weight("ab", "c"), weight("a", "bc"));
    }
}
