//! The `/api/v1` resource routes (users, campaigns, tasks, contacts, imports, do-not-call
//! lists, exports, forms, questionnaires, permissions, prompts, calls, lines), behind Bearer
//! authentication and the campaigns' grants, counted and timed. Each handler checks the
//! role it needs. The routes are one table, so the OpenAPI test can see every path served.

use super::body::{json, sized, JSON_LIMIT, LOGIN_LIMIT};
use super::{
    agent, agents, auth, calls, campaign_calls, campaigns, contacts, dialer, dnc, forms,
    import_settings, lines, metrics, nodes, openapi, permissions, prompts, questionnaires, trunks,
    users, AppState,
};
use axum::routing::{delete, get, post, MethodRouter};
use axum::{middleware, Router};

/// Every authenticated route: (path, handlers). Routes that take JSON say so with `json`.
fn authenticated() -> Vec<(String, MethodRouter<AppState>)> {
    let c = "/api/v1/campaigns/{id}";
    let j = |handlers| json(JSON_LIMIT, handlers);
    vec![
        ("/api/v1/trunks".into(), get(trunks::list)),
        ("/api/v1/nodes".into(), get(nodes::list)),
        ("/api/v1/nodes/route".into(), get(nodes::route)),
        (
            "/api/v1/trunks/{name}/test-call".into(),
            j(post(trunks::test_call)),
        ),
        ("/api/v1/me".into(), get(users::me)),
        (
            "/api/v1/users".into(),
            j(get(users::list).post(users::create)),
        ),
        (
            "/api/v1/users/{id}".into(),
            j(get(users::get).patch(users::patch).delete(users::delete)),
        ),
        (
            "/api/v1/users/{id}/tokens".into(),
            j(get(users::tokens).post(users::create_token)),
        ),
        ("/api/v1/tokens/{id}".into(), delete(users::revoke)),
        (
            "/api/v1/campaigns".into(),
            j(get(campaigns::list).post(campaigns::create)),
        ),
        (
            c.into(),
            j(get(campaigns::get)
                .patch(campaigns::patch)
                .delete(campaigns::delete)),
        ),
        (
            format!("{c}/tasks"),
            j(get(campaigns::list_tasks).post(campaigns::create_task)),
        ),
        (
            format!("{c}/tasks/{{task}}"),
            j(get(campaigns::get_task)
                .patch(campaigns::patch_task)
                .delete(campaigns::delete_task)),
        ),
        (
            format!("{c}/tasks/{{task}}/exports"),
            get(campaigns::exports),
        ),
        (
            format!("{c}/tasks/{{task}}/exports/{{file}}"),
            get(campaigns::download),
        ),
        (
            format!("{c}/contacts"),
            j(get(contacts::list).post(contacts::create)),
        ),
        (format!("{c}/contacts/import"), post(contacts::import)),
        (format!("{c}/contacts/callable"), get(contacts::callable)),
        (
            format!("{c}/contacts/{{contact}}/callable"),
            get(contacts::explain_callable),
        ),
        (format!("{c}/contacts/bulk"), j(post(contacts::bulk))),
        (format!("{c}/contacts/move"), j(post(contacts::move_to))),
        (
            format!("{c}/contacts/{{contact}}"),
            j(get(contacts::get)
                .patch(contacts::patch)
                .delete(contacts::delete)),
        ),
        (
            "/api/v1/dnc".into(),
            // Additions stream a CSV (or take JSON, checked by the handler).
            get(dnc::list_global)
                .post(dnc::add_global)
                .merge(j(delete(dnc::remove_global))),
        ),
        (
            format!("{c}/dnc"),
            // Additions stream a CSV (or take JSON, checked by the handler).
            get(dnc::list_campaign)
                .post(dnc::add_campaign)
                .merge(j(delete(dnc::remove_campaign))),
        ),
        (format!("{c}/form"), j(get(forms::get).put(forms::put))),
        (format!("{c}/form/preview"), get(forms::preview)),
        (
            format!("{c}/questionnaire"),
            j(get(questionnaires::get).put(questionnaires::put)),
        ),
        (
            format!("{c}/questionnaire/export"),
            get(questionnaires::export),
        ),
        (
            format!("{c}/contacts/{{contact}}/answers"),
            j(get(questionnaires::get_answers).put(questionnaires::put_answers)),
        ),
        (
            format!("{c}/permissions"),
            j(get(permissions::get).put(permissions::put)),
        ),
        (format!("{c}/prompts"), get(prompts::list)),
        (
            format!("{c}/prompts/{{name}}"),
            sized(
                prompts::PROMPT_LIMIT,
                get(prompts::get).put(prompts::put).delete(prompts::delete),
            ),
        ),
        (format!("{c}/imports"), get(contacts::imports)),
        (
            format!("{c}/import-settings"),
            j(get(import_settings::get).put(import_settings::put)),
        ),
        (format!("{c}/test-call"), j(post(campaign_calls::test_call))),
        (format!("{c}/dialer"), get(dialer::get)),
        (format!("{c}/dialer/history"), get(dialer::history)),
        (format!("{c}/imports/{{import}}"), get(contacts::get_import)),
        ("/api/v1/calls".into(), get(calls::list)),
        ("/api/v1/calls/{id}".into(), get(calls::get)),
        (
            "/api/v1/lines".into(),
            j(get(lines::list).post(lines::create)),
        ),
        (
            "/api/v1/lines/{id}".into(),
            j(get(lines::get).patch(lines::patch).delete(lines::delete)),
        ),
        (
            "/api/v1/lines/{id}/verification".into(),
            j(post(lines::verify_call)),
        ),
        (
            "/api/v1/lines/{id}/verifications".into(),
            get(lines::verifications),
        ),
        (
            "/api/v1/lines/{id}/verify".into(),
            j(post(lines::verify_code)),
        ),
        (
            "/api/v1/agent/session".into(),
            j(post(agent::start).delete(agent::stop).get(agent::show)),
        ),
        ("/api/v1/agent/ready".into(), post(agent::ready)),
        ("/api/v1/agent/pause".into(), j(post(agent::pause))),
        ("/api/v1/agent/hangup".into(), post(agent::hang_up)),
        ("/api/v1/agent/result".into(), j(post(agent::result))),
        (
            "/api/v1/agent/preview/dial".into(),
            post(agent::preview_dial),
        ),
        (
            "/api/v1/agent/preview/skip".into(),
            post(agent::preview_skip),
        ),
        ("/api/v1/agent/ticket".into(), post(agent::ticket)),
        ("/api/v1/agent/choices".into(), get(agent::choices)),
        ("/api/v1/agent/contact".into(), get(agent::contact)),
        ("/api/v1/agents".into(), get(agents::list)),
        (
            "/api/v1/agents/{id}/session".into(),
            j(post(agents::start).delete(agents::stop)),
        ),
        ("/api/v1/agents/{id}/ready".into(), post(agents::ready)),
        ("/api/v1/agents/{id}/pause".into(), j(post(agents::pause))),
        ("/api/v1/agents/{id}/hangup".into(), post(agents::hang_up)),
    ]
}

/// Routes that need no token: (path, handlers).
fn open() -> Vec<(String, MethodRouter<AppState>)> {
    vec![
        (
            "/api/v1/login".into(),
            json(LOGIN_LIMIT, post(users::login)),
        ),
        ("/api/v1/openapi.json".into(), get(openapi::serve)),
        // WebSockets: a single-use ticket in the query stands for the token.
        ("/api/v1/agent/events".into(), get(agent::events)),
        (
            "/api/v1/queues/{task}/events".into(),
            get(agents::queue_events),
        ),
    ]
}

/// Every path this module serves, as registered.
pub fn paths() -> Vec<String> {
    open()
        .into_iter()
        .chain(authenticated())
        .map(|(p, _)| p)
        .collect()
}

/// The routes, with authentication and metrics layered on.
pub fn routes(state: AppState) -> Router<AppState> {
    let mut with_token = Router::new();
    for (path, handlers) in authenticated() {
        with_token = with_token.route(&path, handlers);
    }
    // The last layer runs first: the token, then the campaign's grants.
    let with_token = with_token
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            auth::campaign_grants,
        ))
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            auth::authenticate,
        ));
    let mut all = Router::new();
    for (path, handlers) in open() {
        all = all.route(&path, handlers);
    }
    all.merge(with_token)
        .route_layer(middleware::from_fn_with_state(
            state.api_metrics.clone(),
            metrics::observe,
        ))
}
