use super::*;
use crate::store::contacts::ContactSpec;

fn contact(id: i64) -> Contact {
    Contact {
        id,
        campaign_id: 1,
        spec: ContactSpec {
            task_id: Some(1),
            fields: Default::default(),
            phones: vec![format!("+3312345{id:04}")],
            time_zone: None,
            status: "open".into(),
            detail: "$none".into(),
            follow_up_at: None,
            owner: None,
            attempts: 0,
        },
        import_id: None,
        dnc_numbers: Vec::new(),
        last_result: None,
        dnc: 0,
        created_at: String::new(),
        updated_at: String::new(),
    }
}

fn contacts(ids: std::ops::Range<i64>) -> Vec<Contact> {
    ids.map(contact).collect()
}

fn ids(v: &[ContactId]) -> Vec<i64> {
    v.iter().map(|c| c.0).collect()
}

#[test]
fn at_a_few_calls_a_second_the_core_asks_the_store_itself() {
    let t0 = Instant::now();
    let mut h = Hopper::new();
    assert_eq!(
        h.take_for_core(3, t0),
        None,
        "nothing ahead: the core waits"
    );
    assert_eq!(h.refill(t0), Some(3), "exactly what the core asked for");
    assert_eq!(h.refill(t0), None, "one refill at a time");
    let handed = h.filled(contacts(1..4), 3, t0).unwrap();
    assert_eq!(ids(&handed), [1, 2, 3]);
    assert_eq!(h.ahead(), 0);
    assert_eq!(
        h.refill(t0),
        None,
        "3 contacts in 5 s: nothing leased ahead"
    );
    assert_eq!(h.place(ContactId(2)).map(|c| c.id), Some(2));
    assert!(h.given(ContactId(1)).is_some());
    assert!(!h.is_empty());
}

#[test]
fn under_steady_demand_the_core_is_answered_from_contacts_leased_ahead() {
    let t0 = Instant::now();
    let mut h = Hopper::new();
    // 50 contacts a second for a second: 2 s ahead is 20 (the demand over a 5 s window).
    let mut next = 0;
    for i in 0..10 {
        let now = t0 + Duration::from_millis(100 * i);
        if let Some(handed) = h.take_for_core(5, now) {
            assert_eq!(handed.len(), 5, "answered at once from ahead");
        } else if let Some(n) = h.refill(now) {
            let got = contacts(next..next + i64::from(n));
            next += i64::from(n);
            assert!(h.filled(got, n, now).is_some());
        }
        if let Some(n) = h.refill(now) {
            let got = contacts(next..next + i64::from(n));
            next += i64::from(n);
            assert_eq!(h.filled(got, n, now), None, "the core did not wait");
        }
    }
    assert!(
        h.ahead() >= 10,
        "about 2 s of demand leased ahead: {}",
        h.ahead()
    );
    assert!(h.ahead() as u32 <= MAX_AHEAD);
    let t1 = t0 + Duration::from_secs(1);
    assert_eq!(h.take_for_core(5, t1).map(|v| v.len()), Some(5));
}

#[test]
fn a_short_refill_quiets_the_hopper_and_the_waiting_core_gets_what_there_is() {
    let t0 = Instant::now();
    let mut h = Hopper::new();
    for _ in 0..20 {
        h.asked.push_back((t0, 5));
    }
    assert_eq!(h.take_for_core(5, t0), None);
    let n = h.refill(t0).unwrap();
    assert_eq!(n, 42 + 5, "2 s of 21 asks of 5 in 5 s, and the core's 5");
    let handed = h.filled(contacts(1..3), n, t0).unwrap();
    assert_eq!(ids(&handed), [1, 2], "the task had only two");
    assert_eq!(h.take_for_core(5, t0), None);
    assert_eq!(h.refill(t0), Some(5), "only the core's part while short");
    assert_eq!(h.filled(Vec::new(), 5, t0), Some(Vec::new()), "none left");
    let later = t0 + EXHAUSTED_BACKOFF;
    assert!(
        h.refill(later).is_some_and(|n| n > 5),
        "leasing ahead again"
    );
}

#[test]
fn contacts_held_too_long_draining_and_a_callback_give_them_back() {
    let t0 = Instant::now();
    let mut h = Hopper::new();
    for _ in 0..20 {
        h.asked.push_back((t0, 5));
    }
    let n = h.refill(t0).unwrap();
    h.filled(contacts(1..1 + i64::from(n)), n, t0);
    let t1 = t0 + Duration::from_secs(1);
    let n2 = {
        h.take_for_core(30, t1).unwrap();
        h.refill(t1).unwrap()
    };
    h.filled(contacts(100..100 + i64::from(n2)), n2, t1);
    assert!(h.stale(t0 + MAX_AGE - Duration::from_millis(1)).is_empty());
    let old = h.stale(t0 + MAX_AGE);
    assert_eq!(
        ids(&old),
        (31..41).collect::<Vec<_>>(),
        "the first refill's rest"
    );
    assert!(h.withdraw(ContactId(100)), "a contact that called in");
    assert!(!h.withdraw(ContactId(100)));
    let back = h.empty_ahead();
    assert_eq!(back.len() as u32, n2 - 1);
    assert_eq!(h.ahead(), 0);
    assert_eq!(h.empty_given().len(), 30);
    assert!(h.is_empty());
}
