//! The dashboard's routes: each reads the state store or calls the same
//! function as the CLI command it stands for.

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::multipart::MultipartError;
use axum::extract::{Form, Multipart, Path, Query, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{Html, IntoResponse, Redirect, Response};
use futures_util::{Stream, StreamExt as _};
use serde::Deserialize;
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::{OwnedMutexGuard, oneshot};

use super::Dashboard;
use super::pages::{self, Overview, Page};
use crate::app::{self, Export, ExportFormat};
use crate::config::{Migration, SyncKind};
use crate::jobs::restore::RestoreError;
use crate::jobs::{self, RetryError, RetryRequest, RunOptions};
use crate::state::{FlaggedFilter, Hold, RunRecord, StateError, SyncRecord};

type Dash = State<Arc<Dashboard>>;

/// Flagged rows shown on a migration's page (the export has them all).
const SHOWN_FLAGGED: u32 = 200;
/// Audit events shown on a migration's page.
const SHOWN_EVENTS: u32 = 100;
/// Runs shown on a migration's page.
const SHOWN_RUNS: u32 = 10;
/// How long a click waits for its turn before it is told to wait.
const TURN_WAIT: std::time::Duration = std::time::Duration::from_millis(500);

/// A page that could not be served.
pub struct Failure(StatusCode, String);

impl IntoResponse for Failure {
    fn into_response(self) -> Response {
        (self.0, Html(pages::failure(self.0, &self.1))).into_response()
    }
}

impl From<StateError> for Failure {
    fn from(e: StateError) -> Self {
        Failure(StatusCode::INTERNAL_SERVER_ERROR, e.to_string())
    }
}

/// Refuses requests to another host, and state changes from other sites;
/// forbids every answer to be framed by another site (whose page could
/// otherwise trick a click on a button) and to run inline scripts.
pub async fn guard(State(d): Dash, request: Request, next: Next) -> Response {
    let mut response = match d.origins.refuse(request.method(), request.headers()) {
        Some(why) => (StatusCode::FORBIDDEN, why).into_response(),
        None => next.run(request).await,
    };
    let headers = response.headers_mut();
    for (name, value) in SECURITY_HEADERS {
        headers.insert(name, header::HeaderValue::from_static(value));
    }
    response
}

/// Sent with every answer.
const SECURITY_HEADERS: [(header::HeaderName, &str); 4] = [
    (
        header::CONTENT_SECURITY_POLICY,
        "default-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'",
    ),
    (header::X_FRAME_OPTIONS, "DENY"),
    (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
    (header::REFERRER_POLICY, "same-origin"),
];

/// A served migration, its file read again: a file that no longer reads
/// is refused with its error rather than acted on in an older version.
fn find(d: &Dashboard, name: &str) -> Result<Migration, Failure> {
    match d.migration(name) {
        Some(Ok(m)) => Ok(m),
        Some(Err(why)) => Err(Failure(StatusCode::CONFLICT, why.to_string())),
        None => Err(Failure(
            StatusCode::NOT_FOUND,
            format!("no migration `{name}` is served here"),
        )),
    }
}

/// The stylesheet.
pub async fn style() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "text/css")], pages::STYLE)
}

/// The live-progress script (a file, so the pages' policy can forbid
/// inline scripts).
pub async fn script() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "text/javascript")], pages::LIVE)
}

/// The list of migrations.
pub async fn index(State(d): Dash) -> Result<Html<String>, Failure> {
    let mut rows = Vec::new();
    for m in &d.catalog.migrations() {
        rows.push(overview(&d, m).await?);
    }
    Ok(Html(pages::index(&rows)))
}

async fn overview(d: &Dashboard, m: &Migration) -> Result<Overview, StateError> {
    let last_sync = d.state.last_syncs(Some(&m.name)).await?.into_iter().next();
    let last_run = runs(d, &m.name, 1).await?.into_iter().next();
    let paused = d.state.paused(&m.name).await?.map(|(since, _)| since);
    let next_sync = match (&paused, m.sync.kind, &last_sync) {
        (Some(_), _, _) => "paused".to_string(),
        (None, SyncKind::OneTime, _) => "not scheduled (one-time)".to_string(),
        (None, _, Some(last)) => {
            let next = crate::jobs::sync::next_sync(last)
                .map(|t| pages::when(&t.to_rfc3339()))
                .unwrap_or_else(|| "not scheduled".into());
            match crate::jobs::sync::lagging(last) {
                Some(lag) => format!("{next} ({lag})"),
                None => next,
            }
        }
        (None, _, None) => "due now".to_string(),
    };
    let run_status = match &last_run {
        Some(run) => Some(run_status(d, &m.name, run).await?),
        None => None,
    };
    let status = match (&paused, m.sync.kind, &last_sync, run_status) {
        (Some(_), ..) => "paused".to_string(),
        (None, SyncKind::OneTime, _, Some(run)) => run,
        (None, _, Some(sync), _) => format!("sync {}", sync.status),
        (None, _, None, Some(run)) => run,
        (None, _, None, None) => "never run".to_string(),
    };
    Ok(Overview {
        name: m.name.clone(),
        kind: kind(m),
        status,
        paused: paused.is_some(),
        scheduled: m.sync.kind != SyncKind::OneTime,
        last_sync: last_sync.map(|s| s.started_at),
        last_run: last_run.map(|r| r.started_at),
        next_sync,
    })
}

/// `name`'s newest `n` runs; one left `running` by a process that is gone
/// (killed, crashed) shows as interrupted.
async fn runs(d: &Dashboard, name: &str, n: u32) -> Result<Vec<RunRecord>, StateError> {
    let mut runs = d.state.runs(name, n).await?;
    let statuses = runs.iter_mut().map(|r| &mut r.status);
    mark_cut_off(d, name, statuses, "the next run resumes it");
    Ok(runs)
}

/// `name`'s newest `n` syncs, as [`runs`] marks them.
async fn syncs(d: &Dashboard, name: &str, n: u32) -> Result<Vec<SyncRecord>, StateError> {
    let mut syncs = d.state.syncs(name, n).await?;
    let statuses = syncs.iter_mut().map(|s| &mut s.status);
    mark_cut_off(d, name, statuses, "the next sync redoes it");
    Ok(syncs)
}

/// Marks `running` statuses as interrupted when no live process holds
/// `name`.
fn mark_cut_off<'a>(
    d: &Dashboard,
    name: &str,
    statuses: impl Iterator<Item = &'a mut String>,
    next: &str,
) {
    let mut running = statuses.filter(|s| s.as_str() == "running").peekable();
    if running.peek().is_some() && !d.state.holder_alive(name) {
        for status in running {
            *status = format!("interrupted ({next})");
        }
    }
}

/// `run succeeded`, or `run succeeded, validation failed` when the newest
/// validation of that run failed (as `credvault run` exits 1 then), or
/// `…, rolled back to POINT` when a rollback undid it.
async fn run_status(d: &Dashboard, name: &str, run: &RunRecord) -> Result<String, StateError> {
    if let Some(point) = &run.rolled_back {
        return Ok(format!("run {}, rolled back to {point}", run.status));
    }
    let validation = d.state.last_validation(name).await?;
    let failed = validation.is_some_and(|v| v.run_id == Some(run.id) && !v.passed);
    Ok(match failed {
        true => format!("run {}, validation failed", run.status),
        false => format!("run {}", run.status),
    })
}

/// `one-time`, or `continuous, every 5m`, or `scheduled, cron 0 3 * * * UTC`.
fn kind(m: &Migration) -> String {
    let name = serde_json::to_value(m.sync.kind).expect("serializable");
    let name = name.as_str().unwrap_or("?");
    match (&m.sync.cron, &m.sync.every) {
        (Some(cron), _) => format!("{name}, cron {cron} UTC"),
        (None, Some(every)) => format!("{name}, every {every}"),
        (None, None) => name.to_string(),
    }
}

/// A migration's page.
pub async fn migration(State(d): Dash, Path(name): Path<String>) -> Result<Html<String>, Failure> {
    let m = &find(&d, &name)?;
    let filter = FlaggedFilter {
        migration: Some(m.name.clone()),
        ..FlaggedFilter::default()
    };
    let shown = FlaggedFilter {
        limit: Some(SHOWN_FLAGGED),
        ..filter.clone()
    };
    let flagged = d.state.flagged(&shown).await?;
    let shown_ids: Vec<i64> = flagged.iter().map(|r| r.id).collect();
    let page = Page {
        overview: overview(&d, m).await?,
        runs: runs(&d, &m.name, SHOWN_RUNS).await?,
        syncs: syncs(&d, &m.name, SHOWN_RUNS).await?,
        validation: d.state.last_validation(&m.name).await?,
        flagged_total: d.state.count_flagged(&filter).await?,
        dry_run_flagged: d
            .state
            .count_flagged(&FlaggedFilter {
                dry_runs: true,
                ..filter.clone()
            })
            .await?,
        retryable_total: d.state.count_retryable(&m.name).await?,
        retryable: d.state.retryable_among(&m.name, &shown_ids).await?,
        flagged,
        points: crate::jobs::restore::list(m).await,
        events: d.state.events(Some(&m.name), SHOWN_EVENTS).await?,
        slots: crate::jobs::sync::slot_reports(m).await,
    };
    Ok(Html(pages::migration(&page)))
}

/// Live progress of a migration's runs, as server-sent events: what has
/// happened so far in the current run, then each new event.
pub async fn events(
    State(d): Dash,
    Path(name): Path<String>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, Failure> {
    find(&d, &name)?;
    let (first, receiver) = d.live.subscribe(&name);
    let first = futures_util::stream::iter(first).map(|json| Ok(Event::default().data(json)));
    let rest = futures_util::stream::unfold((receiver, name), |(mut receiver, name)| async move {
        loop {
            match receiver.recv().await {
                Ok(update) if update.migration == name => {
                    let event = Event::default().data(update.json);
                    return Some((Ok(event), (receiver, name)));
                }
                Ok(_) | Err(RecvError::Lagged(_)) => continue,
                Err(RecvError::Closed) => return None,
            }
        }
    });
    Ok(Sse::new(first.chain(rest)).keep_alive(KeepAlive::default()))
}

/// `credvault flagged export --migration NAME` as a JSON-lines download.
pub async fn export_jsonl(State(d): Dash, Path(name): Path<String>) -> Result<Response, Failure> {
    export(&d, &name, ExportFormat::Jsonl).await
}

/// `credvault flagged export --migration NAME --format csv` as a download.
pub async fn export_csv(State(d): Dash, Path(name): Path<String>) -> Result<Response, Failure> {
    export(&d, &name, ExportFormat::Csv).await
}

async fn export(d: &Dashboard, name: &str, format: ExportFormat) -> Result<Response, Failure> {
    let m = find(d, name)?;
    let filter = FlaggedFilter {
        migration: Some(m.name.clone()),
        ..FlaggedFilter::default()
    };
    // The first piece is read before answering, so that a failure is a
    // page; the rest streams, a page of rows at a time.
    let mut export = Export::new(&d.state, &filter, format);
    let first = export
        .next_chunk()
        .await
        .map_err(|e| Failure(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    let rest = futures_util::stream::unfold(export, |mut export| async move {
        let chunk = export.next_chunk().await.transpose()?;
        Some((chunk, export))
    });
    let body = futures_util::stream::iter(first.map(Ok)).chain(rest);
    let (extension, mime) = match format {
        ExportFormat::Jsonl => ("jsonl", "application/jsonl; charset=utf-8"),
        ExportFormat::Csv => ("csv", "text/csv; charset=utf-8"),
    };
    let file = format!("{}-flagged.{extension}", pages::file_name(&m.name));
    let disposition = format!("attachment; filename=\"{file}\"");
    Ok((
        [
            (header::CONTENT_TYPE, mime.to_string()),
            (header::CONTENT_DISPOSITION, disposition),
        ],
        Body::from_stream(body),
    )
        .into_response())
}

fn back(name: &str) -> Redirect {
    Redirect::to(&format!("/m/{}", pages::enc(name)))
}

/// The migration's turn in this `serve` process and its hold, or a 409
/// that says what to wait for: an action on it here or a scheduled sync
/// of it, or another process writing it. Waits a moment for the turn,
/// which the scheduler also takes for the few milliseconds it looks at
/// the migration's due time.
async fn take_turn(d: &Dashboard, m: &Migration, action: &str) -> Result<Turn, Failure> {
    let turn = d.turns.of(&m.name).lock_owned();
    let turn = tokio::time::timeout(TURN_WAIT, turn).await.map_err(|_| {
        Failure(
            StatusCode::CONFLICT,
            format!("a run, sync, retry or rollback of `{}` is still going (started here or by the schedule): wait for it to finish (its page shows its progress)", m.name),
        )
    })?;
    let action = format!("credvault serve (a {action} from the dashboard)");
    let hold = d
        .state
        .hold(&m.name, &action)
        .map_err(|e| Failure(StatusCode::CONFLICT, e.to_string()))?;
    Ok(Turn { turn, hold })
}

/// What an action holds while it runs: see [`take_turn`].
struct Turn {
    turn: OwnedMutexGuard<()>,
    hold: Hold,
}

/// Runs a one-time migration (`credvault run`, checks first) or syncs a
/// scheduled one (`credvault sync`), in the background; its page follows
/// the progress.
pub async fn run_now(State(d): Dash, Path(name): Path<String>) -> Result<Redirect, Failure> {
    let m = find(&d, &name)?;
    let action = match m.sync.kind {
        SyncKind::OneTime => "run",
        _ => "sync",
    };
    let turn = take_turn(&d, &m, action).await?;
    d.live.begin(&m.name, action);
    let dashboard = Arc::clone(&d);
    // Not awaited: the page follows the run's progress instead.
    drop(in_turn(turn, move |hold| async move {
        let (ok, message) = match m.sync.kind {
            SyncKind::OneTime => dashboard.run(&m, &hold).await,
            _ => dashboard.sync(&m, &hold).await,
        };
        dashboard.live.outcome(&m.name, ok, &message);
    }));
    Ok(back(&name))
}

/// Runs `work` on a thread of its own that holds the dashboard's turn
/// until it is done, and gives it the migration's hold; its result comes
/// through the receiver. On its own
/// thread because a run's future holds borrows across awaits that the
/// compiler cannot prove `Send` for every lifetime (its tasks still run on
/// the runtime's workers), and because a browser that stops waiting must
/// not cut an action off between its writes, as dropping a request's
/// future would.
fn in_turn<T, F, Fut>(Turn { turn, hold }: Turn, work: F) -> oneshot::Receiver<T>
where
    F: FnOnce(Hold) -> Fut + Send + 'static,
    Fut: Future<Output = T>,
    T: Send + 'static,
{
    let runtime = tokio::runtime::Handle::current();
    let (done, result) = oneshot::channel();
    std::thread::spawn(move || {
        let _turn = turn;
        let _ = done.send(runtime.block_on(work(hold)));
    });
    result
}

/// The answer when an action's thread ended without a result.
fn panicked(action: &str) -> Failure {
    Failure(
        StatusCode::INTERNAL_SERVER_ERROR,
        format!("the {action} panicked"),
    )
}

impl Dashboard {
    /// `credvault run FILE`: the pre-run checks, then the run.
    async fn run(&self, m: &Migration, hold: &Hold) -> (bool, String) {
        let checked = match app::check_before_run(m, &self.runtime, &self.state, false, false).await
        {
            Ok(checked) => checked,
            Err(e) => return (false, e.to_string()),
        };
        let failed: Vec<String> = checked
            .results
            .iter()
            .filter(|c| !c.passed)
            .map(|c| format!("{}: {}", c.name, c.detail))
            .collect();
        if !failed.is_empty() {
            let message = format!(
                "{} pre-run check(s) failed, so the run did not start: {} (`credvault check` shows every check)",
                failed.len(),
                failed.join("; ")
            );
            return (false, message);
        }
        let mut observer = self.live.observer(&m.name);
        let options = RunOptions::default();
        let plan = checked.plan;
        let ran = app::run(
            m,
            &self.runtime,
            &self.state,
            hold,
            options,
            plan,
            &mut observer,
        )
        .await;
        match (ran.error(), ran.passed()) {
            (Some(e), _) => (false, e.to_string()),
            (None, true) => (true, "the run succeeded".into()),
            (None, false) => (false, "the run finished, but its validation failed".into()),
        }
    }

    /// `credvault sync FILE`.
    async fn sync(&self, m: &Migration, hold: &Hold) -> (bool, String) {
        let mut observer = self.live.observer(&m.name);
        let (runtime, state) = (&self.runtime, &self.state);
        match crate::jobs::sync::sync_migration(m, runtime, state, hold, &mut observer).await {
            Ok(s) => (
                true,
                format!(
                    "sync {} succeeded: {} new, {} updated, {} deleted",
                    s.sync_id, s.total.inserted, s.total.updated, s.total.deleted
                ),
            ),
            Err(e) => (false, e.to_string()),
        }
    }
}

/// `credvault pause FILE`.
pub async fn pause(State(d): Dash, Path(name): Path<String>) -> Result<Redirect, Failure> {
    let m = &find(&d, &name)?;
    app::pause(&d.state, &m.name).await?;
    Ok(back(&name))
}

/// `credvault resume FILE`.
pub async fn resume(State(d): Dash, Path(name): Path<String>) -> Result<Redirect, Failure> {
    let m = &find(&d, &name)?;
    app::resume(&d.state, &m.name).await?;
    Ok(back(&name))
}

/// The rows a retry form asks for: one (`id`) or all.
#[derive(Deserialize)]
pub struct Retry {
    id: Option<i64>,
}

/// `credvault flagged retry FILE [--id ID]`.
pub async fn retry(
    State(d): Dash,
    Path(name): Path<String>,
    Form(form): Form<Retry>,
) -> Result<Html<String>, Failure> {
    let request = RetryRequest {
        ids: form.id.into_iter().collect(),
        ..RetryRequest::default()
    };
    retry_with(d, &name, request).await
}

/// The largest fixed file taken (a 10,000-row export is about 2 MiB).
pub const FIXED_LIMIT: usize = 64 << 20;

/// `credvault flagged retry FILE --fixed FIXED.jsonl`, the file uploaded:
/// the rows it holds, as fixed in an export.
pub async fn retry_fixed(
    State(d): Dash,
    Path(name): Path<String>,
    mut upload: Multipart,
) -> Result<Html<String>, Failure> {
    let refused = |why: String| Failure(StatusCode::BAD_REQUEST, format!("the fixed file: {why}"));
    // Too large is 413, a broken upload 400.
    let broken =
        |e: MultipartError| Failure(e.status(), format!("the fixed file: {}", e.body_text()));
    let mut text = None;
    while let Some(field) = upload.next_field().await.map_err(broken)? {
        if field.name() == Some("fixed") {
            let bytes = field.bytes().await.map_err(broken)?;
            let utf8 = String::from_utf8(bytes.to_vec()).map_err(|_| {
                refused("it is not UTF-8 text; upload the JSON-lines export".into())
            })?;
            text = Some(utf8);
        }
    }
    let text = text.ok_or_else(|| refused("none was uploaded; choose the edited export".into()))?;
    let request = RetryRequest {
        fixed: app::read_fixed(&text).map_err(|e| refused(e.to_string()))?,
        ..RetryRequest::default()
    };
    retry_with(d, &name, request).await
}

/// Retries what `request` asks in `name`'s turn; its result page.
async fn retry_with(
    d: Arc<Dashboard>,
    name: &str,
    request: RetryRequest,
) -> Result<Html<String>, Failure> {
    let m = find(&d, name)?;
    let turn = take_turn(&d, &m, "retry").await?;
    let dashboard = d;
    let name = m.name.clone();
    let summary = in_turn(turn, move |hold| async move {
        let (runtime, state) = (&dashboard.runtime, &dashboard.state);
        jobs::retry_flagged(&m, runtime, state, &hold, &request).await
    })
    .await
    .map_err(|_| panicked("retry"))?
    .map_err(|e| match e {
        RetryError::Refused(why) => Failure(StatusCode::CONFLICT, why),
        other => Failure(StatusCode::INTERNAL_SERVER_ERROR, other.to_string()),
    })?;
    Ok(Html(pages::retried(&name, &summary)))
}

/// Which restore point a rollback goes to.
#[derive(Deserialize)]
pub struct To {
    to: String,
}

/// The confirmation asked before a rollback: what it will do.
pub async fn confirm_rollback(
    State(d): Dash,
    Path(name): Path<String>,
    Query(To { to }): Query<To>,
) -> Result<Html<String>, Failure> {
    let m = &find(&d, &name)?;
    let listing = crate::jobs::restore::list(m)
        .await
        .map_err(|e| Failure(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    let point = listing
        .points
        .iter()
        .find(|p| p.name == to)
        .ok_or_else(|| {
            Failure(
                StatusCode::NOT_FOUND,
                format!("`{}` has no restore point `{to}`", m.name),
            )
        })?;
    Ok(Html(pages::confirm_rollback(
        &m.name,
        &listing.destination,
        point,
    )))
}

/// The confirmed rollback form.
#[derive(Deserialize)]
pub struct Confirmed {
    to: String,
    #[serde(default)]
    confirm: String,
}

/// `credvault rollback FILE --to POINT`, once confirmed.
pub async fn rollback(
    State(d): Dash,
    Path(name): Path<String>,
    Form(form): Form<Confirmed>,
) -> Result<Html<String>, Failure> {
    let m = find(&d, &name)?;
    if form.confirm != "yes" {
        return Err(Failure(
            StatusCode::BAD_REQUEST,
            "a rollback needs its confirmation (confirm=yes); open the restore point's Roll back link".into(),
        ));
    }
    let turn = take_turn(&d, &m, "rollback").await?;
    let dashboard = Arc::clone(&d);
    let name = m.name.clone();
    let report = in_turn(turn, move |hold| async move {
        crate::jobs::restore::rollback(&m, Some(&form.to), &dashboard.state, &hold).await
    })
    .await
    .map_err(|_| panicked("rollback"))?
    .map_err(|e| match e {
        RestoreError::Refused { .. } => Failure(StatusCode::CONFLICT, e.to_string()),
        other => Failure(StatusCode::INTERNAL_SERVER_ERROR, other.to_string()),
    })?;
    Ok(Html(pages::rolled_back(&name, &report)))
}
