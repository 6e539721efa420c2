//! The receivers: `POST /hooks/github`, `/hooks/gitlab` and `/hooks/generic`, plus
//! `/healthz`. Each request is answered at once: the body is read up to the cap (413
//! past it, and nothing more is read), authenticated over the raw bytes
//! ([`super::verify`]), only then parsed, its delivery id recorded (a replay answers 200
//! and does nothing), and a push to the deploy branch queued for the run worker (202).
//! Nothing here fetches, deploys or shows run data: the payload is only a hint that the
//! branch moved.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use serde_json::{json, Value};

use super::config::Secret;
use super::observe::{DeliveryResult, Observer, Receiver};
use super::queue::{Queue, Trigger};
use super::verify::{self, Refusal, StandardHeaders};
use crate::store::{Delivery, Store};

/// What the receivers share.
#[derive(Clone)]
pub struct HookState {
    pub branch: String,
    pub secrets: Arc<Vec<(Receiver, Secret)>>,
    pub store: Arc<Mutex<Store>>,
    pub queue: Arc<Queue>,
    pub observer: Arc<dyn Observer>,
    /// Set on SIGTERM: deliveries are answered 503 so the sender retries later.
    pub stopping: Arc<AtomicBool>,
}

/// The hook routes (`/healthz` is the pages'), each body capped at `body_limit` bytes.
pub fn router(state: HookState, body_limit: usize) -> Router {
    Router::new()
        .route("/hooks/github", post(github))
        .route("/hooks/gitlab", post(gitlab))
        .route("/hooks/generic", post(generic))
        .layer(DefaultBodyLimit::max(body_limit))
        .with_state(state)
}

async fn github(
    State(state): State<HookState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    receive(state, Receiver::Github, headers, body)
}

async fn gitlab(
    State(state): State<HookState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    receive(state, Receiver::Gitlab, headers, body)
}

async fn generic(
    State(state): State<HookState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    receive(state, Receiver::Generic, headers, body)
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// What one delivery says once authenticated.
struct Parsed {
    id: String,
    event: String,
    git_ref: Option<String>,
    pusher: Option<String>,
}

fn reply(status: StatusCode, body: Value) -> Response {
    (status, Json(body)).into_response()
}

fn receive(
    state: HookState,
    receiver: Receiver,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let done = |result: DeliveryResult, status: StatusCode, body: Value| {
        state.observer.delivery(receiver, result);
        reply(status, body)
    };
    let Some(secret) = state
        .secrets
        .iter()
        .find(|(r, _)| *r == receiver)
        .map(|(_, s)| s.clone())
    else {
        return reply(
            StatusCode::NOT_FOUND,
            json!({"error": "this receiver is not enabled"}),
        );
    };
    let body = match body {
        Ok(body) => body,
        Err(rejection) if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            eprintln!(
                "serve: {receiver}: refused a delivery: body over the cap",
                receiver = receiver.as_str()
            );
            return done(
                DeliveryResult::TooLarge,
                StatusCode::PAYLOAD_TOO_LARGE,
                json!({"error": "body too large"}),
            );
        }
        Err(rejection) => {
            return done(
                DeliveryResult::BadRequest,
                StatusCode::BAD_REQUEST,
                json!({"error": rejection.body_text()}),
            );
        }
    };
    if let Err(refusal) = authenticate(receiver, secret.expose(), &headers, &body) {
        // The reason only: never the body, the signature sent or the secret.
        eprintln!(
            "serve: {}: refused a delivery: {refusal}",
            receiver.as_str()
        );
        return done(
            DeliveryResult::Unauthorized,
            StatusCode::UNAUTHORIZED,
            json!({"error": refusal.to_string()}),
        );
    }
    if state.stopping.load(Ordering::SeqCst) {
        return reply(
            StatusCode::SERVICE_UNAVAILABLE,
            json!({"error": "the daemon is shutting down; deliver again later"}),
        );
    }
    let parsed = match parse(receiver, &headers, &body) {
        Ok(parsed) => parsed,
        Err(message) => {
            return done(
                DeliveryResult::BadRequest,
                StatusCode::BAD_REQUEST,
                json!({"error": message}),
            )
        }
    };
    let wanted = format!("refs/heads/{}", state.branch);
    let (result, why) = if parsed.event == "ping" {
        (DeliveryResult::Ignored, "ping")
    } else if parsed.event != "push" {
        (DeliveryResult::Ignored, "not a push")
    } else if parsed.git_ref.as_deref().is_some_and(|r| r != wanted) {
        (DeliveryResult::Ignored, "not the deploy branch")
    } else {
        (DeliveryResult::Accepted, "queued")
    };
    let record = Delivery {
        receiver: receiver.as_str().into(),
        id: parsed.id.clone(),
        event: parsed.event.clone(),
        git_ref: parsed.git_ref.clone(),
        pusher: parsed.pusher.clone(),
        result: result.as_str().into(),
        received_at: String::new(),
        run: None,
    };
    let fresh = {
        let store = state.store.lock().unwrap_or_else(PoisonError::into_inner);
        store.record_delivery(&record)
    };
    match fresh {
        Ok(true) => {}
        Ok(false) => {
            return done(
                DeliveryResult::Duplicate,
                StatusCode::OK,
                json!({"status": "duplicate", "delivery": parsed.id}),
            )
        }
        Err(err) => {
            eprintln!(
                "serve: {}: cannot record a delivery: {err}",
                receiver.as_str()
            );
            return reply(
                StatusCode::SERVICE_UNAVAILABLE,
                json!({"error": "cannot record the delivery; deliver again later"}),
            );
        }
    }
    if result != DeliveryResult::Accepted {
        let status = if parsed.event == "ping" {
            StatusCode::OK
        } else {
            StatusCode::ACCEPTED
        };
        return done(
            result,
            status,
            json!({"status": "ignored", "reason": why, "delivery": parsed.id}),
        );
    }
    state.queue.push(Trigger {
        receiver,
        delivery: parsed.id.clone(),
    });
    let mut response = done(
        DeliveryResult::Accepted,
        StatusCode::ACCEPTED,
        json!({"status": "queued", "delivery": parsed.id, "runs": "/runs"}),
    );
    response
        .headers_mut()
        .insert("location", axum::http::HeaderValue::from_static("/runs"));
    response
}

fn authenticate(
    receiver: Receiver,
    secret: &[u8],
    headers: &HeaderMap,
    body: &[u8],
) -> Result<(), Refusal> {
    match receiver {
        Receiver::Github => verify::github(secret, header(headers, "x-hub-signature-256"), body),
        Receiver::Gitlab => verify::gitlab(secret, header(headers, "x-gitlab-token")),
        Receiver::Generic => {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
            verify::standard(
                secret,
                &StandardHeaders {
                    id: header(headers, "webhook-id"),
                    timestamp: header(headers, "webhook-timestamp"),
                    signature: header(headers, "webhook-signature"),
                },
                body,
                now,
            )
        }
    }
}

/// The delivery id, event, ref and pusher of an authenticated delivery.
fn parse(receiver: Receiver, headers: &HeaderMap, body: &[u8]) -> Result<Parsed, String> {
    let (id_header, event) = match receiver {
        Receiver::Github => (
            "x-github-delivery",
            header(headers, "x-github-event").map(str::to_string),
        ),
        Receiver::Gitlab => (
            "x-gitlab-event-uuid",
            header(headers, "x-gitlab-event").map(|e| match e {
                "Push Hook" => "push".to_string(),
                other => other.to_ascii_lowercase(),
            }),
        ),
        Receiver::Generic => ("webhook-id", None),
    };
    let id = header(headers, id_header)
        .map(str::trim)
        .filter(|id| !id.is_empty() && id.len() <= 200)
        .ok_or_else(|| format!("missing or unusable `{id_header}` header"))?
        .to_string();
    let value: Value = if body.is_empty() && receiver == Receiver::Generic {
        Value::Null
    } else {
        serde_json::from_slice(body).map_err(|err| format!("the body is not JSON: {err}"))?
    };
    let text = |v: &Value| v.as_str().map(|s| s.chars().take(200).collect::<String>());
    let (event, git_ref, pusher) = match receiver {
        Receiver::Github => (
            event.ok_or("missing `X-GitHub-Event` header")?,
            text(&value["ref"]),
            text(&value["pusher"]["name"]),
        ),
        Receiver::Gitlab => (
            event.ok_or("missing `X-Gitlab-Event` header")?,
            text(&value["ref"]),
            text(&value["user_username"]).or_else(|| text(&value["user_name"])),
        ),
        Receiver::Generic => {
            let data = if value["data"].is_object() {
                &value["data"]
            } else {
                &value
            };
            (
                text(&value["type"]).unwrap_or_else(|| "push".into()),
                text(&data["ref"]),
                text(&data["pusher"]),
            )
        }
    };
    Ok(Parsed {
        id,
        event,
        git_ref,
        pusher,
    })
}
