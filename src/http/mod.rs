//! The wire: routes, extractors, and the mapping of errors to statuses. Handlers stay
//! thin: parse, authorize, send one message to an organization actor, render.

mod activations;
mod allocations;
mod auth;
mod body;
mod error;
mod groups;
mod keys;
mod ops;
mod orgs;
pub(crate) mod peer;
mod pools;
mod projects;
mod reports;
mod roles;
mod routes;
mod sessions;
mod users;
pub mod wire;

use std::cell::RefCell;
use std::collections::HashMap;
use std::time::Instant;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::http::Method;
use actix_web::middleware::Next;
use actix_web::HttpMessage;
use actix_web::{web, Error};
use metrics::{Counter, Histogram};
use tracing::Instrument;

pub use auth::Caller;
pub use body::{Filter, Json, PageQuery, BODY_LIMIT};
pub use error::ApiError;
pub use routes::openapi;

use crate::actors::Directory;
use crate::telemetry::metric;
use crate::tokens::Signer;

/// What every handler shares.
pub struct AppState {
    pub directory: Directory,
    pub signer: Signer,
    /// For reads that need no actor: the audit log.
    pub store: crate::store::Store,
    /// SHA-256 of the operator's bootstrap token.
    pub operator_hash: [u8; 32],
    pub max_wait_seconds: u64,
    /// Whether every request is logged.
    pub access_log: bool,
    /// Whether `/metrics` is served on a listener of its own (`metrics.bind`) instead.
    pub metrics_elsewhere: bool,
}

/// The routes of the `metrics.bind` listener: `/metrics`, and 404 for anything else.
pub fn configure_metrics_only(cfg: &mut web::ServiceConfig) {
    cfg.route("/metrics", web::get().to(ops::exposition))
        .default_service(web::to(ops::not_found));
}

/// Registers every route, the body limit and the JSON error handlers.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.app_data(web::PayloadConfig::new(BODY_LIMIT))
        .app_data(
            web::QueryConfig::default()
                .error_handler(|e, _| ApiError::BadRequest(format!("bad query: {e}")).into()),
        )
        .app_data(
            web::PathConfig::default()
                .error_handler(|e, _| ApiError::BadRequest(format!("bad path: {e}")).into()),
        )
        .configure(routes::register)
        .default_service(web::to(ops::not_found));
}

/// Counts requests and times them, labelled by route pattern (never the raw path, whose
/// ids would make every request a new series) and by method (a standard one, else
/// `other`: a client's made-up methods must not grow the registry either).
pub async fn record_metrics(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, Error> {
    let started = Instant::now();
    let res = next.call(req).await?;
    // The pattern its resource carries: `match_pattern()` would route the path again.
    let route = (res.request().app_data::<routes::Pattern>()).map_or("unmatched", |p| p.0);
    let method = match *res.request().method() {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    };
    let status = res.status().as_u16();
    SERIES.with_borrow_mut(|series| {
        let (count, time) =
            series
                .entry((route, method, status))
                .or_insert_with_key(|(route, method, status)| {
                    (
                        metrics::counter!(metric::HTTP_REQUESTS, "route" => *route,
                        "method" => *method, "status" => status.to_string()),
                        metrics::histogram!(metric::HTTP_DURATION, "route" => *route),
                    )
                });
        count.increment(1);
        time.record(started.elapsed().as_secs_f64());
    });
    Ok(res)
}

/// Gives every request an id and a span carrying it, so every line logged on its
/// behalf (the handler's, and its org actor's while handling it) names it; answers the
/// id in `X-Request-Id`, logs a failure (5xx) with its cause, and logs the request when
/// the access log is on. A client's own `X-Request-Id` is kept if it is 1-64 characters
/// of `[A-Za-z0-9._-]` (it reaches the logs), else replaced.
///
/// On the runtime routes (`/v1/sessions…`) nothing is logged at `info` but a failure or
/// a waiting acquire's warning, and making the span was the largest cost of this
/// middleware (~1 µs a request: the subscriber formats its field and tracks it at every
/// poll): there, unless debug lines or the access log are on, the span is made only
/// when a line is logged ([`lazy_span`]). Their org actor then gets no span either
/// (commands carry the current one): it logs only audited changes, which runtime
/// commands never make.
pub async fn trace_request(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, Error> {
    let id = match req.headers().get(&REQUEST_ID) {
        Some(given) if is_request_id(given.as_bytes()) => given.clone(),
        _ => HeaderValue::from_str(&format!("{:016x}", rand::random::<u64>()))
            .expect("hex is a valid header value"),
    };
    let logged = req
        .app_data::<web::Data<AppState>>()
        .is_some_and(|s| s.access_log)
        .then(|| (req.method().clone(), loggable(req.path()), Instant::now()));
    let lazy = logged.is_none()
        && req.path().starts_with("/v1/sessions")
        && tracing::level_filters::LevelFilter::current() < tracing::Level::DEBUG;
    let (answer, span) = if lazy {
        req.extensions_mut().insert(RequestId(id.clone()));
        (next.call(req).await, None)
    } else {
        let span = request_span(&id);
        (next.call(req).instrument(span.clone()).await, Some(span))
    };
    // Internals stay in the log; the client learns only that it failed.
    let failure = match &answer {
        Ok(res) => res
            .response()
            .error()
            .filter(|_| res.status().is_server_error()),
        Err(e) => Some(e).filter(|e| e.as_response_error().status_code().is_server_error()),
    };
    if failure.is_some() || logged.is_some() {
        let span = span.unwrap_or_else(|| request_span(&id));
        let _in_request = span.enter();
        if let Some(e) = failure {
            tracing::error!(error = %e, "request failed");
        }
        if let (Some((method, path, started)), Ok(res)) = (&logged, &answer) {
            tracing::info!(
                method = method.as_str(),
                path,
                status = res.status().as_u16(),
                micros = started.elapsed().as_micros() as u64,
                "request"
            );
        }
    }
    let mut res = answer?;
    res.headers_mut().insert(REQUEST_ID, id);
    Ok(res)
}

/// The id of a request whose span [`trace_request`] left to be made when needed.
struct RequestId(HeaderValue);

fn request_span(id: &HeaderValue) -> tracing::Span {
    tracing::info_span!("request", request_id = id.to_str().unwrap_or_default())
}

/// The span to log a line of `req` in: `None` when the request's span is already
/// current, else one made now (see [`trace_request`]).
pub(crate) fn lazy_span(req: &actix_web::HttpRequest) -> Option<tracing::Span> {
    let id = req.extensions().get::<RequestId>()?.0.clone();
    Some(request_span(&id))
}

/// A path for the access log: members are addressed by e-mail too, and a segment that
/// holds one is written `{email}`, so the log keeps no personal data.
fn loggable(path: &str) -> String {
    let is_email = |segment: &str| segment.contains('@') || segment.contains("%40");
    if !is_email(path) {
        return path.to_owned();
    }
    let segments: Vec<&str> = path
        .split('/')
        .map(|s| if is_email(s) { "{email}" } else { s })
        .collect();
    segments.join("/")
}

/// The header carrying a request's id.
const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

fn is_request_id(id: &[u8]) -> bool {
    (1..=64).contains(&id.len())
        && id
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// A request series' labels: route pattern, method, status.
type SeriesKey = (&'static str, &'static str, u16);

thread_local! {
    /// The request series this worker has seen, with their handles: a request costs a
    /// map lookup, not a labelled key built and registered.
    static SERIES: RefCell<HashMap<SeriesKey, (Counter, Histogram)>> = RefCell::default();
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::{Arc, Mutex};

    use actix_web::{middleware, test, App, HttpResponse};
    use tracing_subscriber::layer::{Context, SubscriberExt};
    use tracing_subscriber::Layer;

    use super::*;
    use crate::actors::ActorError;

    /// What the subscriber wrote.
    #[derive(Clone, Default)]
    struct Written(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Written {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Written {
        type Writer = Written;
        fn make_writer(&'a self) -> Written {
            self.clone()
        }
    }

    /// Counts the spans made.
    struct Spans(Arc<AtomicUsize>);

    impl<S: tracing::Subscriber> Layer<S> for Spans {
        fn on_new_span(
            &self,
            _: &tracing::span::Attributes<'_>,
            _: &tracing::span::Id,
            _: Context<'_, S>,
        ) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    #[actix_web::test]
    async fn a_runtime_route_makes_its_span_only_to_log_a_failure_in_it() {
        let (written, spans) = (Written::default(), Arc::new(AtomicUsize::new(0)));
        let subscriber = tracing_subscriber::registry()
            .with(
                tracing_subscriber::fmt::layer()
                    .with_writer(written.clone())
                    .with_ansi(false)
                    .with_filter(tracing_subscriber::filter::LevelFilter::INFO),
            )
            .with(Spans(spans.clone()).with_filter(tracing_subscriber::filter::LevelFilter::INFO));
        let _default = tracing::subscriber::set_default(subscriber);
        let app = test::init_service(
            App::new()
                .wrap(middleware::from_fn(trace_request))
                .route(
                    "/v1/sessions",
                    web::post().to(|| async { HttpResponse::Created().finish() }),
                )
                .route(
                    "/v1/sessions/{id}",
                    web::delete().to(|| async {
                        Err::<HttpResponse, _>(ApiError::Actor(ActorError::Unavailable))
                    }),
                )
                .route(
                    "/v1/orgs",
                    web::post().to(|| async { HttpResponse::Created().finish() }),
                ),
        )
        .await;
        let call = |method: Method, uri: &str| {
            test::TestRequest::default()
                .method(method)
                .uri(uri)
                .insert_header(("x-request-id", "req-7"))
                .to_request()
        };

        let granted = test::call_service(&app, call(Method::POST, "/v1/sessions")).await;
        assert_eq!(granted.status(), 201);
        assert_eq!(granted.headers().get(&REQUEST_ID).unwrap(), "req-7");
        assert_eq!(spans.load(Ordering::SeqCst), 0, "a quiet runtime request");

        let failed = test::call_service(&app, call(Method::DELETE, "/v1/sessions/s1")).await;
        assert_eq!(failed.status(), 500);
        assert_eq!(failed.headers().get(&REQUEST_ID).unwrap(), "req-7");
        assert_eq!(spans.load(Ordering::SeqCst), 1, "made to log the failure");
        let text = String::from_utf8(written.0.lock().unwrap().clone()).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 1, "{text}");
        assert!(
            lines[0].contains(r#"request{request_id="req-7"}"#)
                && lines[0].contains("request failed")
                && lines[0].contains("organization actor unavailable"),
            "{text}"
        );

        // Any other route has its span from the start.
        let founded = test::call_service(&app, call(Method::POST, "/v1/orgs")).await;
        assert_eq!(founded.status(), 201);
        assert_eq!(spans.load(Ordering::SeqCst), 2);
    }
}
