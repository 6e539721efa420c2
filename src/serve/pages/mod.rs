//! The daemon's read side over HTTP: `/` and `/runs` (latest runs), `/runs/{id}` (one
//! run), each as HTML or JSON (`Accept: application/json`, or `.json` after the path);
//! `/healthz` (the process answers), `/readyz` (the run history takes a write lock and
//! the site repository is fetchable) and `/metrics`. [`router`] returns a router with
//! its state applied, which the daemon merges next to its hook endpoints.
//!
//! The history is opened per request on a blocking thread (SQLite is synchronous, and
//! a fresh connection sees the history file appear once the first run creates it).
//! With a read token every route but `/healthz` needs it (see [`auth`](super::auth)).

mod render;
pub mod view;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use serde::Deserialize;

use super::auth::{self, ReadToken};
use super::html::content_security_policy;
use super::metrics::{Metrics, CONTENT_TYPE};
use crate::store::{RunId, Store, StoreError};
use view::{RunList, RunPage, RunSummary, Trigger, VERSION};

/// Whether the site repository can be fetched now; `Err` says why not. Called on a
/// blocking thread, bounded by [`READY_TIMEOUT`].
pub type Readiness = Arc<dyn Fn() -> Result<(), String> + Send + Sync>;

/// The deliveries that triggered a run, from the daemon's records in the history (the
/// daemon maps its `Store::run_triggers` into [`Trigger`]s). Called on a blocking
/// thread with the open history.
pub type Triggers = Arc<dyn Fn(&Store, RunId) -> Result<Vec<Trigger>, StoreError> + Send + Sync>;

/// How long `/readyz` waits for the store's write lock and for the repository check.
pub const READY_TIMEOUT: Duration = Duration::from_secs(10);

/// Runs listed when `?limit=` does not say, and the most it may ask for.
const DEFAULT_LIMIT: usize = 50;
const MAX_LIMIT: usize = 500;

/// What the pages need from the daemon.
#[derive(Clone)]
pub struct PagesState {
    /// The run history file (`.tandem/history.sqlite` in the site by default).
    pub history: PathBuf,
    pub metrics: Arc<Metrics>,
    /// Required on every route but `/healthz` when set.
    pub read_token: Option<ReadToken>,
    pub repository_ready: Readiness,
    /// What triggered each run; `None`: no trigger is shown.
    pub triggers: Option<Triggers>,
}

impl std::fmt::Debug for PagesState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PagesState")
            .field("history", &self.history)
            .field("read_token", &self.read_token)
            .finish_non_exhaustive()
    }
}

/// The pages, health and metrics routes, state applied.
pub fn router(state: PagesState) -> Router {
    let token = state.read_token.clone();
    let guarded = Router::new()
        .route("/", get(runs))
        .route("/runs", get(runs))
        .route("/runs.json", get(runs_json))
        .route("/runs/{id}", get(run))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .with_state(state)
        .layer(axum::middleware::from_fn_with_state(token, auth::require));
    Router::new()
        .route("/healthz", get(healthz))
        .merge(guarded)
        .layer(axum::middleware::map_response(hardened))
}

/// Headers on every response: nothing cached, sniffed, framed or referred; HTML under
/// the no-script policy.
async fn hardened(mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers
        .entry(header::CACHE_CONTROL)
        .or_insert(HeaderValue::from_static("no-store"));
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(content_security_policy()),
    );
    response
}

#[derive(Debug, Deserialize)]
struct ListQuery {
    limit: Option<usize>,
}

/// Whether the client asked for JSON rather than a page.
fn wants_json(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|v| v.split(';').next().unwrap_or("").trim())
        .try_fold(false, |json, kind| match kind {
            "text/html" => None,
            "application/json" => Some(true),
            _ => Some(json),
        })
        .unwrap_or(false)
}

fn html(status: StatusCode, body: String) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        body,
    )
        .into_response()
}

fn json<T: serde::Serialize>(status: StatusCode, value: &T) -> Response {
    match serde_json::to_string_pretty(value) {
        Ok(text) => (
            status,
            [(header::CONTENT_TYPE, "application/json")],
            text + "\n",
        )
            .into_response(),
        Err(err) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("cannot encode JSON: {err}\n"),
        )
            .into_response(),
    }
}

/// A failure as the asked-for kind of document.
fn failure(as_json: bool, status: StatusCode, title: &str, text: &str) -> Response {
    if as_json {
        json(
            status,
            &serde_json::json!({ "version": VERSION, "error": text }),
        )
    } else {
        html(status, render::message(title, text))
    }
}

/// Runs `read` on the history on a blocking thread; `None` when there is no history
/// file yet.
async fn with_store<T: Send + 'static>(
    path: PathBuf,
    read: impl FnOnce(&Store) -> Result<T, StoreError> + Send + 'static,
) -> Result<Option<T>, String> {
    let task = tokio::task::spawn_blocking(move || match Store::open_existing(&path) {
        Ok(Some(store)) => read(&store).map(Some),
        Ok(None) => Ok(None),
        Err(err) => Err(err),
    });
    match task.await {
        Ok(result) => result.map_err(|err| err.to_string()),
        Err(err) => Err(format!("the history reader stopped: {err}")),
    }
}

fn triggers_of(
    triggers: Option<&Triggers>,
    store: &Store,
    id: RunId,
) -> Result<Vec<Trigger>, StoreError> {
    triggers.map_or(Ok(Vec::new()), |lookup| lookup(store, id))
}

async fn list(state: &PagesState, limit: usize) -> Result<Vec<RunSummary>, String> {
    let limit = limit.clamp(1, MAX_LIMIT);
    let triggers = state.triggers.clone();
    let runs = with_store(state.history.clone(), move |store| {
        let mut out = Vec::new();
        for run in store.runs(limit)? {
            let triggered = triggers_of(triggers.as_ref(), store, run.id)?;
            out.push(RunSummary::of(&store.run(run.id)?, triggered));
        }
        Ok(out)
    })
    .await?;
    Ok(runs.unwrap_or_default())
}

async fn runs(
    State(state): State<PagesState>,
    Query(query): Query<ListQuery>,
    headers: HeaderMap,
) -> Response {
    respond_runs(&state, query, wants_json(&headers)).await
}

async fn runs_json(State(state): State<PagesState>, Query(query): Query<ListQuery>) -> Response {
    respond_runs(&state, query, true).await
}

async fn respond_runs(state: &PagesState, query: ListQuery, as_json: bool) -> Response {
    match list(state, query.limit.unwrap_or(DEFAULT_LIMIT)).await {
        Ok(runs) if as_json => json(
            StatusCode::OK,
            &RunList {
                version: VERSION,
                runs,
            },
        ),
        Ok(runs) => html(StatusCode::OK, render::runs(&runs)),
        Err(err) => failure(
            as_json,
            StatusCode::INTERNAL_SERVER_ERROR,
            "cannot read the run history",
            &err,
        ),
    }
}

async fn run(
    State(state): State<PagesState>,
    Path(raw): Path<String>,
    headers: HeaderMap,
) -> Response {
    let (raw, as_json) = match raw.strip_suffix(".json") {
        Some(id) => (id, true),
        None => (raw.as_str(), wants_json(&headers)),
    };
    let not_found = |text: String| failure(as_json, StatusCode::NOT_FOUND, "no such run", &text);
    let Some(id) = raw
        .bytes()
        .all(|b| b.is_ascii_digit())
        .then(|| raw.parse::<RunId>().ok())
        .flatten()
    else {
        return not_found("a run id is a positive number, as `/runs` lists it".into());
    };
    let triggers = state.triggers.clone();
    let detail = with_store(state.history.clone(), move |store| match store.run(id) {
        Ok(detail) => Ok(Some((triggers_of(triggers.as_ref(), store, id)?, detail))),
        Err(StoreError::NoSuchRun { .. }) => Ok(None),
        Err(err) => Err(err),
    })
    .await;
    match detail {
        Ok(Some(Some((triggered, detail)))) => {
            let page = RunPage::of(&detail, triggered);
            if as_json {
                json(StatusCode::OK, &page)
            } else {
                html(StatusCode::OK, render::run(&page))
            }
        }
        Ok(_) => not_found(format!("no run `{id}` in the run history")),
        Err(err) => failure(
            as_json,
            StatusCode::INTERNAL_SERVER_ERROR,
            "cannot read the run history",
            &err,
        ),
    }
}

async fn healthz() -> Response {
    (StatusCode::OK, "ok\n").into_response()
}

/// 200 `ready` when the history takes a write lock (`BEGIN IMMEDIATE`, rolled back) and
/// the repository check passes; 503 with every reason otherwise.
async fn readyz(State(state): State<PagesState>) -> Response {
    let history = state.history.clone();
    let store = tokio::task::spawn_blocking(move || store_writable(&history));
    let check = state.repository_ready.clone();
    let repository = tokio::task::spawn_blocking(move || check());
    let (store, repository) = tokio::join!(
        tokio::time::timeout(READY_TIMEOUT, store),
        tokio::time::timeout(READY_TIMEOUT, repository)
    );
    let reasons: Vec<String> = [
        settle("run history", store),
        settle("repository", repository),
    ]
    .into_iter()
    .filter_map(Result::err)
    .collect();
    if reasons.is_empty() {
        (StatusCode::OK, "ready\n").into_response()
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not ready\n{}\n", reasons.join("\n")),
        )
            .into_response()
    }
}

/// A readiness check's answer, its reason prefixed with what was checked.
fn settle(
    what: &str,
    done: Result<Result<Result<(), String>, tokio::task::JoinError>, tokio::time::error::Elapsed>,
) -> Result<(), String> {
    match done {
        Ok(Ok(Ok(()))) => Ok(()),
        Ok(Ok(Err(reason))) => Err(format!("{what}: {reason}")),
        Ok(Err(err)) => Err(format!("{what}: the check stopped: {err}")),
        Err(_) => Err(format!(
            "{what}: no answer within {}s",
            READY_TIMEOUT.as_secs()
        )),
    }
}

/// Opens (creating and migrating if needed) the history and takes and releases its
/// write lock.
fn store_writable(path: &std::path::Path) -> Result<(), String> {
    let fail = |err: &dyn std::fmt::Display| err.to_string();
    Store::open(path).map_err(|e| fail(&e))?;
    let conn = rusqlite::Connection::open_with_flags(
        path,
        rusqlite::OpenFlags::SQLITE_OPEN_READ_WRITE | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(|e| fail(&format!("cannot open `{}`: {e}", path.display())))?;
    conn.busy_timeout(READY_TIMEOUT / 2).map_err(|e| fail(&e))?;
    conn.execute_batch("BEGIN IMMEDIATE; ROLLBACK;")
        .map_err(|e| fail(&format!("`{}` takes no write lock: {e}", path.display())))
}

async fn metrics(State(state): State<PagesState>) -> Response {
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, CONTENT_TYPE)],
        state.metrics.encode(),
    )
        .into_response()
}
