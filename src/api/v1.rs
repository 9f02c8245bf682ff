//! The `/api/v1` resource routes (users, campaigns, tasks, contacts, imports, do-not-call
//! lists, exports, forms, questionnaires, permissions, calls, lines), behind Bearer
//! authentication and the campaigns' grants, counted and timed. Each handler checks the
//! role it needs. The routes are one table, so the OpenAPI test can see every path served.

use super::{
    auth, calls, campaign_calls, campaigns, contacts, dnc, forms, lines, metrics, openapi,
    permissions, questionnaires, users, AppState,
};
use axum::routing::{delete, get, post, MethodRouter};
use axum::{middleware, Router};

/// Every authenticated route: (path, handlers).
fn authenticated() -> Vec<(String, MethodRouter<AppState>)> {
    let c = "/api/v1/campaigns/{id}";
    vec![
        ("/api/v1/me".into(), get(users::me)),
        ("/api/v1/users".into(), get(users::list).post(users::create)),
        (
            "/api/v1/users/{id}".into(),
            get(users::get).delete(users::delete),
        ),
        (
            "/api/v1/users/{id}/tokens".into(),
            get(users::tokens).post(users::create_token),
        ),
        ("/api/v1/tokens/{id}".into(), delete(users::revoke)),
        (
            "/api/v1/campaigns".into(),
            get(campaigns::list).post(campaigns::create),
        ),
        (
            c.into(),
            get(campaigns::get)
                .patch(campaigns::patch)
                .delete(campaigns::delete),
        ),
        (
            format!("{c}/tasks"),
            get(campaigns::list_tasks).post(campaigns::create_task),
        ),
        (
            format!("{c}/tasks/{{task}}"),
            get(campaigns::get_task)
                .patch(campaigns::patch_task)
                .delete(campaigns::delete_task),
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
            get(contacts::list).post(contacts::create),
        ),
        (format!("{c}/contacts/import"), post(contacts::import)),
        (format!("{c}/contacts/callable"), get(contacts::callable)),
        (format!("{c}/contacts/bulk"), post(contacts::bulk)),
        (format!("{c}/contacts/move"), post(contacts::move_to)),
        (
            format!("{c}/contacts/{{contact}}"),
            get(contacts::get)
                .patch(contacts::patch)
                .delete(contacts::delete),
        ),
        (
            "/api/v1/dnc".into(),
            get(dnc::list_global)
                .post(dnc::add_global)
                .delete(dnc::remove_global),
        ),
        (
            format!("{c}/dnc"),
            get(dnc::list_campaign)
                .post(dnc::add_campaign)
                .delete(dnc::remove_campaign),
        ),
        (format!("{c}/form"), get(forms::get).put(forms::put)),
        (format!("{c}/form/preview"), get(forms::preview)),
        (
            format!("{c}/questionnaire"),
            get(questionnaires::get).put(questionnaires::put),
        ),
        (
            format!("{c}/questionnaire/export"),
            get(questionnaires::export),
        ),
        (
            format!("{c}/contacts/{{contact}}/answers"),
            get(questionnaires::get_answers).put(questionnaires::put_answers),
        ),
        (
            format!("{c}/permissions"),
            get(permissions::get).put(permissions::put),
        ),
        (format!("{c}/imports"), get(contacts::imports)),
        (format!("{c}/test-call"), post(campaign_calls::test_call)),
        (format!("{c}/imports/{{import}}"), get(contacts::get_import)),
        ("/api/v1/calls".into(), get(calls::list)),
        ("/api/v1/calls/{id}".into(), get(calls::get)),
        ("/api/v1/lines".into(), get(lines::list).post(lines::create)),
        (
            "/api/v1/lines/{id}".into(),
            get(lines::get).patch(lines::patch).delete(lines::delete),
        ),
        (
            "/api/v1/lines/{id}/verification".into(),
            post(lines::verify_call),
        ),
        (
            "/api/v1/lines/{id}/verifications".into(),
            get(lines::verifications),
        ),
        ("/api/v1/lines/{id}/verify".into(), post(lines::verify_code)),
    ]
}

/// Routes that need no token: (path, handlers).
fn open() -> Vec<(String, MethodRouter<AppState>)> {
    vec![
        ("/api/v1/login".into(), post(users::login)),
        ("/api/v1/openapi.json".into(), get(openapi::serve)),
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
