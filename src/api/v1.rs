//! The `/api/v1` resource routes (users, campaigns, tasks, contacts, imports), behind Bearer
//! authentication, counted and timed. Each handler checks the role it needs.

use super::{auth, campaigns, contacts, dnc, metrics, users, AppState};
use axum::routing::{get, post};
use axum::{middleware, Router};

/// The routes, with authentication and metrics layered on.
pub fn routes(state: AppState) -> Router<AppState> {
    let c = "/api/v1/campaigns/{id}";
    let authenticated = Router::new()
        .route("/api/v1/me", get(users::me))
        .route("/api/v1/users", get(users::list).post(users::create))
        .route("/api/v1/users/{id}", get(users::get).delete(users::delete))
        .route(
            "/api/v1/users/{id}/tokens",
            get(users::tokens).post(users::create_token),
        )
        .route("/api/v1/tokens/{id}", axum::routing::delete(users::revoke))
        .route(
            "/api/v1/campaigns",
            get(campaigns::list).post(campaigns::create),
        )
        .route(
            c,
            get(campaigns::get)
                .patch(campaigns::patch)
                .delete(campaigns::delete),
        )
        .route(
            &format!("{c}/tasks"),
            get(campaigns::list_tasks).post(campaigns::create_task),
        )
        .route(
            &format!("{c}/tasks/{{task}}"),
            get(campaigns::get_task)
                .patch(campaigns::patch_task)
                .delete(campaigns::delete_task),
        )
        .route(
            &format!("{c}/tasks/{{task}}/exports"),
            get(campaigns::exports),
        )
        .route(
            &format!("{c}/tasks/{{task}}/exports/{{file}}"),
            get(campaigns::download),
        )
        .route(
            &format!("{c}/contacts"),
            get(contacts::list).post(contacts::create),
        )
        .route(&format!("{c}/contacts/import"), post(contacts::import))
        .route(&format!("{c}/contacts/callable"), get(contacts::callable))
        .route(&format!("{c}/contacts/bulk"), post(contacts::bulk))
        .route(&format!("{c}/contacts/move"), post(contacts::move_to))
        .route(
            &format!("{c}/contacts/{{contact}}"),
            get(contacts::get)
                .patch(contacts::patch)
                .delete(contacts::delete),
        )
        .route(
            "/api/v1/dnc",
            get(dnc::list_global)
                .post(dnc::add_global)
                .delete(dnc::remove_global),
        )
        .route(
            &format!("{c}/dnc"),
            get(dnc::list_campaign)
                .post(dnc::add_campaign)
                .delete(dnc::remove_campaign),
        )
        .route(&format!("{c}/imports"), get(contacts::imports))
        .route(
            &format!("{c}/imports/{{import}}"),
            get(contacts::get_import),
        )
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            auth::authenticate,
        ));
    Router::new()
        .route("/api/v1/login", post(users::login))
        .merge(authenticated)
        .route_layer(middleware::from_fn_with_state(
            state.api_metrics.clone(),
            metrics::observe,
        ))
}
