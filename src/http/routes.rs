//! Every route, once: the table both registers the handlers and describes them, so the
//! OpenAPI document (`GET /openapi.json`) cannot leave one out. A known path asked with
//! a method it does not serve answers 405 with `Allow`.

use std::collections::BTreeMap;

use actix_web::http::header::ALLOW;
use actix_web::http::Method;
use actix_web::{web, FromRequest, Handler, HttpResponse, Responder, Route};
use serde::Serialize;
use utoipa::openapi::path::{
    HttpMethod, OperationBuilder, ParameterBuilder, ParameterIn, PathItem,
};
use utoipa::openapi::request_body::RequestBodyBuilder;
use utoipa::openapi::schema::{ArrayBuilder, ObjectBuilder, Schema, Type};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme};
use utoipa::openapi::{
    ComponentsBuilder, ContentBuilder, InfoBuilder, OpenApi, OpenApiBuilder, PathsBuilder, Ref,
    RefOr, Required, ResponseBuilder,
};
use utoipa::{PartialSchema, ToSchema};

use super::error::ApiError;
use super::{
    activations, allocations, groups, keys, ops, orgs, pools, projects, reports, roles, sessions,
    users,
};

/// Where the API description is served (the one route it leaves out).
const OPENAPI: &str = "/openapi.json";

/// Who may call a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Auth {
    /// Anyone, without credentials.
    Public,
    /// The operator's bootstrap token.
    Operator,
    /// A key with the `sessions` scope; the key's member and org are implied.
    Sessions,
    /// A key with the `admin` scope of a member of the org whose roles allow it.
    Admin,
}

/// Builds a named schema into the components and answers a reference to it.
type SchemaFn = fn(&mut Vec<(String, RefOr<Schema>)>) -> RefOr<Schema>;

fn named<T: ToSchema>(components: &mut Vec<(String, RefOr<Schema>)>) -> RefOr<Schema> {
    T::schemas(components);
    components.push((T::name().into_owned(), T::schema()));
    Ref::from_schema_name(T::name()).into()
}

fn list_of<T: ToSchema>(components: &mut Vec<(String, RefOr<Schema>)>) -> RefOr<Schema> {
    let item = named::<T>(components);
    ObjectBuilder::new()
        .property("items", ArrayBuilder::new().items(item))
        .required("items")
        .property(
            "next",
            ObjectBuilder::new()
                .schema_type(utoipa::openapi::schema::SchemaType::from_iter([
                    Type::String,
                    Type::Null,
                ]))
                .description(Some(
                    "cursor of the next page (`?after=`), null on the last",
                )),
        )
        .required("next")
        .into()
}

/// One route: where, how, what it runs, and what the API description says of it.
pub struct Endpoint {
    pub method: Method,
    pub path: &'static str,
    route: Route,
    summary: &'static str,
    auth: Auth,
    query: Vec<(&'static str, &'static str)>,
    body: Option<SchemaFn>,
    answers: Vec<(u16, &'static str, Option<SchemaFn>)>,
    errors: Vec<(u16, &'static str)>,
}

fn at<F, Args>(method: Method, path: &'static str, handler: F) -> Endpoint
where
    F: Handler<Args>,
    Args: FromRequest + 'static,
    F::Output: Responder + 'static,
{
    Endpoint {
        route: web::method(method.clone()).to(handler),
        method,
        path,
        summary: "",
        auth: Auth::Public,
        query: Vec::new(),
        body: None,
        answers: Vec::new(),
        errors: Vec::new(),
    }
}

impl Endpoint {
    fn doc(mut self, summary: &'static str, auth: Auth) -> Self {
        self.summary = summary;
        self.auth = auth;
        self
    }

    fn body<T: ToSchema>(mut self) -> Self {
        self.body = Some(named::<T>);
        self
    }

    fn query(mut self, name: &'static str, description: &'static str) -> Self {
        self.query.push((name, description));
        self
    }

    fn answers<T: ToSchema>(mut self, status: u16, description: &'static str) -> Self {
        self.answers.push((status, description, Some(named::<T>)));
        self
    }

    fn lists<T: ToSchema>(mut self, description: &'static str) -> Self {
        self.answers.push((200, description, Some(list_of::<T>)));
        self.query("limit", "page size, 1-1000 (default 100)")
            .query("after", "the `next` cursor of the previous page")
    }

    fn no_content(mut self, description: &'static str) -> Self {
        self.answers.push((204, description, None));
        self
    }

    fn text(mut self, description: &'static str) -> Self {
        self.answers.push((200, description, None));
        self
    }

    fn error(mut self, status: u16, codes: &'static str) -> Self {
        self.errors.push((status, codes));
        self
    }
}

/// Every route, in the order actix tries them: the runtime's hot routes first (each
/// earlier pattern costs a regex match), and fixed names (`revoke`, `remove`) before
/// the `{user}`/`{subject}` patterns that would take them.
pub fn endpoints() -> Vec<Endpoint> {
    use Auth::*;
    let (get, post, put, patch, delete) = (
        Method::GET,
        Method::POST,
        Method::PUT,
        Method::PATCH,
        Method::DELETE,
    );
    vec![
        at(get.clone(), "/healthz", ops::healthz)
            .doc("Liveness: the process answers", Public)
            .text("`{\"status\": \"ok\"}`"),
        at(get.clone(), "/readyz", ops::readyz)
            .doc("Readiness: the store is recovered and the server serves (it listens only then)", Public)
            .text("`{\"status\": \"ready\", \"organizations\": N}`"),
        at(get.clone(), "/metrics", ops::metrics)
            .doc("Prometheus metrics (text exposition format)", Public)
            .text("the exposition"),
        at(get.clone(), OPENAPI, ops::openapi)
            .doc("This API description", Public)
            .text("an OpenAPI 3.1 document"),
        at(get.clone(), "/.well-known/jwks.json", ops::jwks)
            .doc("Public keys (Ed25519, by kid) that verify lease and activation tokens", Public)
            .text("a JWKS"),
        at(post.clone(), "/v1/sessions", sessions::acquire)
            .doc("Acquire a floating session (a lease), queueing up to wait_seconds", Sessions)
            .body::<sessions::AcquireBody>()
            .answers::<sessions::Granted>(201, "a new lease")
            .answers::<sessions::Granted>(200, "the fingerprint's live lease, extended")
            .error(403, "not_entitled")
            .error(409, "seat_cap_reached (retry_after, and Retry-After), pool_expired")
            .error(429, "rate_limited: too many queued acquires (retry_after)"),
        at(get.clone(), "/v1/sessions", sessions::mine)
            .doc("The key's member's own live leases", Sessions)
            .lists::<sessions::SessionView>("live leases"),
        at(post.clone(), "/v1/sessions/{id}/heartbeat", sessions::heartbeat)
            .doc("Extend a lease by its ttl; answers a fresh token", Sessions)
            .answers::<sessions::Renewed>(200, "the new expiry and token")
            .error(404, "session_not_found: ended, expired, or another member's")
            .error(409, "pool_expired")
            .error(403, "not_entitled"),
        at(delete.clone(), "/v1/sessions/{id}", sessions::release)
            .doc("Release a lease", Sessions)
            .no_content("released")
            .error(404, "session_not_found"),
        at(get.clone(), "/v1/orgs/{org}/authz/check", projects::check)
            .doc("May a member do this in a project? (one permission, or several comma-separated)", Sessions)
            .query("project", "the project id (required)")
            .query("permission", "a permission, or several separated by commas (required)")
            .query("user", "a member id or e-mail (default: the key's member; others need owner/administrator)")
            .answers::<projects::Answer>(200, "one permission: {allowed, reasons}; several: {allowed, results: [{permission, allowed, reasons}]}")
            .error(422, "invalid: unknown permission names (listed)"),
        at(post.clone(), "/v1/activations", activations::activate)
            .doc("Activate a machine for a product (node-locked use)", Sessions)
            .body::<activations::ActivateBody>()
            .answers::<activations::Issued>(201, "a new activation")
            .answers::<activations::Issued>(200, "the fingerprint's existing activation")
            .error(403, "not_entitled")
            .error(409, "machine_limit_reached (machines)"),
        at(post.clone(), "/v1/activations/{id}/refresh", activations::refresh)
            .doc("A fresh activation token, valid 30 days", Sessions)
            .answers::<Refreshed>(200, "the token")
            .error(403, "not_entitled"),
        at(delete.clone(), "/v1/activations/{id}", activations::deactivate)
            .doc("Deactivate one's own machine", Sessions)
            .no_content("deactivated"),
        at(get.clone(), "/v1/orgs/{org}/activations", activations::list)
            .doc("Active machines (all=true adds deactivated ones)", Admin)
            .query("all", "true to include deactivated machines")
            .lists::<activations::ActivationView>("activations"),
        at(delete.clone(), "/v1/orgs/{org}/activations/{id}", activations::admin_deactivate)
            .doc("Deactivate any machine of the org", Admin)
            .no_content("deactivated"),
        at(post.clone(), "/v1/orgs", orgs::create)
            .doc("Found an organization with its owner; the owner's key is shown this once", Operator)
            .body::<orgs::CreateOrg>()
            .answers::<FoundedOrg>(201, "the organization"),
        at(get.clone(), "/v1/orgs", orgs::list)
            .doc("Organizations, in id order", Operator)
            .lists::<orgs::OrgView>("organizations"),
        at(get.clone(), "/v1/orgs/{org}", orgs::get)
            .doc("One organization (operator, or its owner/administrators)", Admin)
            .answers::<orgs::OrgView>(200, "the organization"),
        at(delete.clone(), "/v1/orgs/{org}", orgs::delete)
            .doc("Delete an organization and everything it holds", Operator)
            .no_content("deleted"),
        at(get.clone(), "/v1/backup", orgs::backup)
            .doc("A consistent backup of every organization, one binary file (seatkeeper backup/restore)", Operator)
            .text("application/octet-stream: the backup file"),
        at(post.clone(), "/v1/orgs/{org}/users", users::create)
            .doc("Add a member {email, name?, tenant_roles?}, or several {users: [...]} (all or none)", Admin)
            .body::<users::NewUser>()
            .answers::<users::UserView>(201, "the member (or {items} for several)")
            .error(409, "conflict: the e-mail is a member already"),
        at(get.clone(), "/v1/orgs/{org}/users", users::list)
            .doc("Members", Admin)
            .query("email", "narrow to the member with this e-mail")
            .lists::<users::UserView>("members"),
        at(get.clone(), "/v1/orgs/{org}/users/{user}", users::get)
            .doc("One member (id or e-mail) with their named seats", Admin)
            .answers::<users::UserView>(200, "the member"),
        at(patch.clone(), "/v1/orgs/{org}/users/{user}", users::update)
            .doc("Change a member's tenant roles (giving `owner` transfers ownership)", Admin)
            .body::<users::UpdateUser>()
            .answers::<users::UserView>(200, "the member (owner_api_key on an ownership transfer)")
            .error(409, "conflict"),
        at(delete.clone(), "/v1/orgs/{org}/users/{user}", users::delete)
            .doc("Remove a member: keys revoked, seats released, machines deactivated", Admin)
            .no_content("removed")
            .error(409, "user_signed_in (sessions), conflict (the owner)"),
        at(post.clone(), "/v1/orgs/{org}/users/{user}/api-keys", keys::create)
            .doc("Create an API key; the secret is shown this once", Admin)
            .body::<keys::CreateKey>()
            .answers::<keys::KeyView>(201, "the key with its secret"),
        at(get.clone(), "/v1/orgs/{org}/users/{user}/api-keys", keys::list)
            .doc("A member's keys (never the secrets)", Admin)
            .lists::<keys::KeyView>("keys"),
        at(delete.clone(), "/v1/orgs/{org}/api-keys/{id}", keys::revoke)
            .doc("Revoke a key: its leases end and its queued acquires are refused", Admin)
            .no_content("revoked")
            .error(409, "conflict: the owner's last admin key"),
        at(post.clone(), "/v1/orgs/{org}/pools", pools::create)
            .doc("Create a pool of named or floating seats", Admin)
            .body::<pools::CreatePool>()
            .answers::<pools::PoolView>(201, "the pool"),
        at(get.clone(), "/v1/orgs/{org}/pools", pools::list)
            .doc("Pools", Admin)
            .query("product", "pools that give seats of this product, bundles included")
            .lists::<pools::PoolView>("pools"),
        at(get.clone(), "/v1/orgs/{org}/pools/{pool}", pools::get)
            .doc("One pool", Admin)
            .answers::<pools::PoolView>(200, "the pool"),
        at(patch.clone(), "/v1/orgs/{org}/pools/{pool}", pools::update)
            .doc("Change seats or expiry", Admin)
            .body::<pools::UpdatePool>()
            .answers::<pools::PoolView>(200, "the pool")
            .error(409, "conflict (live or allocated above the new seats)"),
        at(delete.clone(), "/v1/orgs/{org}/pools/{pool}", pools::delete)
            .doc("Delete a pool (its allocations are revoked)", Admin)
            .no_content("deleted")
            .error(409, "conflict: live sessions"),
        at(post.clone(), "/v1/orgs/{org}/pools/{pool}/allocations", allocations::create)
            .doc("Allocate seats to members, all or none", Admin)
            .body::<allocations::Users>()
            .answers::<allocations::CountsView>(200, "the pool's counts after the call")
            .error(409, "quota_exceeded (free, requested), pool_expired"),
        at(get.clone(), "/v1/orgs/{org}/pools/{pool}/allocations", allocations::list)
            .doc("Members holding a seat of the pool (or entitled to a floating one)", Admin)
            .lists::<allocations::AllocationView>("allocations"),
        at(post.clone(), "/v1/orgs/{org}/pools/{pool}/allocations/revoke", allocations::revoke)
            .doc("Revoke seats of members", Admin)
            .body::<allocations::Users>()
            .answers::<allocations::CountsView>(200, "the pool's counts after the call"),
        at(post.clone(), "/v1/orgs/{org}/pools/{pool}/allocations/transfer", allocations::transfer)
            .doc("Move a seat (and the machines activated with it) to another member", Admin)
            .body::<allocations::Transfer>()
            .answers::<allocations::CountsView>(200, "the pool's counts after the call")
            .error(409, "conflict: the receiver holds a seat already"),
        at(delete.clone(), "/v1/orgs/{org}/pools/{pool}/allocations/{user}", allocations::delete)
            .doc("Revoke one member's seat", Admin)
            .no_content("revoked"),
        at(post.clone(), "/v1/orgs/{org}/groups", groups::create)
            .doc("Create a group", Admin)
            .body::<groups::NewGroup>()
            .answers::<groups::GroupView>(201, "the group")
            .error(409, "conflict: the name is taken"),
        at(get.clone(), "/v1/orgs/{org}/groups", groups::list)
            .doc("Groups, `everyone` included (any member reads)", Admin)
            .lists::<groups::GroupView>("groups"),
        at(get.clone(), "/v1/orgs/{org}/groups/{group}", groups::get)
            .doc("One group", Admin)
            .answers::<groups::GroupView>(200, "the group"),
        at(patch.clone(), "/v1/orgs/{org}/groups/{group}", groups::update)
            .doc("Change a group's name, members or tenant roles", Admin)
            .body::<groups::GroupPatch>()
            .answers::<groups::GroupView>(200, "the group"),
        at(delete.clone(), "/v1/orgs/{org}/groups/{group}", groups::delete)
            .doc("Delete a group and its assignments", Admin)
            .no_content("deleted"),
        at(put.clone(), "/v1/orgs/{org}/groups/{group}/members", groups::set_members)
            .doc("Set a group's members", Admin)
            .body::<groups::Members>()
            .answers::<groups::GroupView>(200, "the group"),
        at(post.clone(), "/v1/orgs/{org}/projects", projects::create)
            .doc("Create a project; the creator owns it", Admin)
            .body::<projects::NewProject>()
            .answers::<projects::ProjectView>(201, "the project"),
        at(get.clone(), "/v1/orgs/{org}/projects", projects::list)
            .doc("The projects the caller sees", Admin)
            .lists::<projects::ProjectView>("projects"),
        at(get.clone(), "/v1/orgs/{org}/projects/{project}", projects::get)
            .doc("One project (404 if the caller cannot see it)", Admin)
            .answers::<projects::ProjectView>(200, "the project"),
        at(put.clone(), "/v1/orgs/{org}/projects/{project}/access", projects::assign)
            .doc("Assign a user or group a set of roles (`[]` = read_only)", Admin)
            .body::<projects::Assign>()
            .answers::<Assignment>(200, "the assignment"),
        at(get.clone(), "/v1/orgs/{org}/projects/{project}/access", projects::access)
            .doc("The project's assignments", Admin)
            .lists::<Assignment>("assignments"),
        at(post.clone(), "/v1/orgs/{org}/projects/{project}/access/remove", projects::unassign)
            .doc("Remove several subjects' access, all or none", Admin)
            .body::<projects::Unassign>()
            .lists::<Assignment>("the assignments left"),
        at(get.clone(), "/v1/orgs/{org}/projects/{project}/access/{subject}", projects::access_one)
            .doc("One subject's assignment (member id or e-mail, group id, or everyone)", Admin)
            .answers::<Assignment>(200, "the assignment"),
        at(delete.clone(), "/v1/orgs/{org}/projects/{project}/access/{subject}", projects::unassign_one)
            .doc("Remove one subject's access", Admin)
            .no_content("removed"),
        at(post.clone(), "/v1/orgs/{org}/projects/{project}/transfer-ownership", projects::transfer)
            .doc("Give the project to another member", Admin)
            .body::<projects::Transfer>()
            .answers::<projects::ProjectView>(200, "the project"),
        at(post.clone(), "/v1/orgs/{org}/roles", roles::create)
            .doc("Create a custom role", Admin)
            .body::<roles::RoleBody>()
            .answers::<roles::RoleView>(201, "the role")
            .error(409, "conflict: the name is taken or a built-in's"),
        at(get.clone(), "/v1/orgs/{org}/roles", roles::list)
            .doc("Built-in and custom roles (any member reads)", Admin)
            .lists::<roles::RoleView>("roles"),
        at(get.clone(), "/v1/orgs/{org}/roles/{role}", roles::get)
            .doc("One role", Admin)
            .answers::<roles::RoleView>(200, "the role"),
        at(patch.clone(), "/v1/orgs/{org}/roles/{role}", roles::update)
            .doc("Change a custom role", Admin)
            .body::<roles::RoleBody>()
            .answers::<roles::RoleView>(200, "the role")
            .error(409, "conflict: built-in roles cannot change"),
        at(delete.clone(), "/v1/orgs/{org}/roles/{role}", roles::delete)
            .doc("Delete a custom role (removed from every assignment)", Admin)
            .no_content("deleted"),
        at(post.clone(), "/v1/orgs/{org}/roles/{role}/clone", roles::clone)
            .doc("Copy a role under a new name", Admin)
            .body::<roles::CloneBody>()
            .answers::<roles::RoleView>(201, "the new role"),
        at(get.clone(), "/v1/orgs/{org}/usage", reports::usage)
            .doc("Seats bought, allocated, activated and live, per pool and per product", Admin)
            .answers::<reports::UsageView>(200, "the usage report"),
        at(get.clone(), "/v1/orgs/{org}/audit", reports::audit)
            .doc("The audit log, newest first; `next` is the id to pass as `before`", Admin)
            .query("limit", "page size, 1-1000 (default 100)")
            .query("before", "answer entries strictly older than this entry id")
            .answers::<AuditPage>(200, "a page of entries"),
        at(get.clone(), "/v1/orgs/{org}/sessions", sessions::list)
            .doc("Live leases of the org", Admin)
            .query("product", "narrow to a product")
            .query("pool", "narrow to a pool")
            .query("user", "narrow to a member (id or e-mail)")
            .lists::<sessions::SessionView>("live leases"),
        at(delete.clone(), "/v1/orgs/{org}/sessions/{id}", sessions::end)
            .doc("End any live lease of the org", Admin)
            .no_content("ended")
            .error(404, "session_not_found"),
    ]
}

/// Registers every endpoint, one resource per path, each answering 405 with `Allow`
/// to the methods it does not serve.
pub fn register(cfg: &mut web::ServiceConfig) {
    let mut order: Vec<&'static str> = Vec::new();
    let mut by_path: BTreeMap<&'static str, Vec<Endpoint>> = BTreeMap::new();
    for e in endpoints() {
        if !by_path.contains_key(e.path) {
            order.push(e.path);
        }
        by_path.entry(e.path).or_default().push(e);
    }
    for path in order {
        let served = by_path.remove(path).unwrap_or_default();
        let allow: String = (served.iter().map(|e| e.method.as_str()))
            .collect::<Vec<_>>()
            .join(", ");
        let mut resource = web::resource(path)
            .app_data(Pattern(path))
            .default_service(web::to(move || {
                let allow = allow.clone();
                async move { method_not_allowed(allow) }
            }));
        for e in served {
            resource = resource.route(e.route);
        }
        cfg.service(resource);
    }
}

/// The route pattern a resource serves, for the request metrics' `route` label.
pub struct Pattern(pub &'static str);

fn method_not_allowed(allow: String) -> HttpResponse {
    let mut answer =
        actix_web::ResponseError::error_response(&ApiError::MethodNotAllowed(allow.clone()));
    if let Ok(value) = allow.parse() {
        answer.headers_mut().insert(ALLOW, value);
    }
    answer
}

/// The API description of every endpoint.
pub fn openapi() -> OpenApi {
    let mut schemas: Vec<(String, RefOr<Schema>)> = Vec::new();
    let error = named::<ErrorBody>(&mut schemas);
    let mut paths = PathsBuilder::new();
    let mut items: BTreeMap<&'static str, Vec<(HttpMethod, utoipa::openapi::path::Operation)>> =
        BTreeMap::new();
    // DESIGN §3: the description covers every route but its own.
    for e in endpoints().into_iter().filter(|e| e.path != OPENAPI) {
        let mut op = OperationBuilder::new()
            .summary(Some(e.summary))
            .operation_id(Some(format!(
                "{}{}",
                e.method.as_str().to_lowercase(),
                e.path.replace(['/', '{', '}', '.', '-'], "_")
            )));
        for name in path_params(e.path) {
            op = op.parameter(
                ParameterBuilder::new()
                    .name(name)
                    .parameter_in(ParameterIn::Path)
                    .required(Required::True)
                    .schema(Some(String::schema())),
            );
        }
        for (name, description) in &e.query {
            op = op.parameter(
                ParameterBuilder::new()
                    .name(*name)
                    .parameter_in(ParameterIn::Query)
                    .required(Required::False)
                    .description(Some(*description))
                    .schema(Some(String::schema())),
            );
        }
        if let Some(body) = e.body {
            op = op.request_body(Some(
                RequestBodyBuilder::new()
                    .content(
                        "application/json",
                        ContentBuilder::new()
                            .schema(Some(body(&mut schemas)))
                            .build(),
                    )
                    .required(Some(Required::True))
                    .build(),
            ));
        }
        for (status, description, schema) in &e.answers {
            let mut answer = ResponseBuilder::new().description(*description);
            if let Some(schema) = schema {
                answer = answer.content(
                    "application/json",
                    ContentBuilder::new()
                        .schema(Some(schema(&mut schemas)))
                        .build(),
                );
            }
            op = op.response(status.to_string(), answer.build());
        }
        for (status, codes) in errors_of(&e) {
            op = op.response(
                status.to_string(),
                ResponseBuilder::new()
                    .description(codes)
                    .content(
                        "application/json",
                        ContentBuilder::new().schema(Some(error.clone())).build(),
                    )
                    .build(),
            );
        }
        if e.auth != Auth::Public {
            op = op
                .security(SecurityRequirement::new("bearer", Vec::<String>::new()))
                .description(Some(match e.auth {
                    Auth::Operator => "Operator token.",
                    Auth::Sessions => "An API key with the `sessions` scope.",
                    Auth::Admin => {
                        "An API key with the `admin` scope; the member's roles decide (see the README's table)."
                    }
                    Auth::Public => "",
                }));
        }
        let method = match e.method.as_str() {
            "GET" => HttpMethod::Get,
            "POST" => HttpMethod::Post,
            "PUT" => HttpMethod::Put,
            "PATCH" => HttpMethod::Patch,
            _ => HttpMethod::Delete,
        };
        items.entry(e.path).or_default().push((method, op.build()));
    }
    for (path, ops) in items {
        let mut item: Option<PathItem> = None;
        for (method, op) in ops {
            let one = PathItem::new(method, op);
            item = Some(match item {
                None => one,
                Some(mut all) => {
                    all.merge_operations(one);
                    all
                }
            });
        }
        if let Some(item) = item {
            paths = paths.path(path, item);
        }
    }
    schemas.sort_by(|a, b| a.0.cmp(&b.0));
    schemas.dedup_by(|a, b| a.0 == b.0);
    let components = ComponentsBuilder::new()
        .schemas_from_iter(schemas)
        .security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some("An API key (`sk_…`) or the operator token"))
                    .build(),
            ),
        )
        .build();
    OpenApiBuilder::new()
        .info(
            InfoBuilder::new()
                .title("seatkeeper")
                .version(env!("CARGO_PKG_VERSION"))
                .description(Some(
                    "Floating-license and seat server. Errors are {error, message, ...details}.",
                ))
                .build(),
        )
        .paths(paths.build())
        .components(Some(components))
        .build()
}

/// The errors every endpoint of its kind may answer, then its own.
fn errors_of(e: &Endpoint) -> BTreeMap<u16, String> {
    let mut all: BTreeMap<u16, String> = BTreeMap::new();
    let mut add = |status: u16, codes: &str| {
        let text = all.entry(status).or_default();
        if !text.is_empty() {
            text.push_str("; ");
        }
        text.push_str(codes);
    };
    if e.auth != Auth::Public {
        add(
            401,
            "unauthorized: no, unknown, expired or revoked credentials",
        );
        add(
            403,
            "forbidden: the key's scope or the member's roles do not allow it",
        );
        add(429, "rate_limited");
    }
    if !path_params(e.path).is_empty() {
        add(
            404,
            "not_found: no such id here (ids of another organization too)",
        );
    }
    if e.body.is_some() {
        add(400, "bad_request: malformed JSON or a compressed body");
        add(413, "payload_too_large: over 64 KiB");
    }
    if e.body.is_some() || !e.query.is_empty() || !path_params(e.path).is_empty() {
        add(422, "invalid: a well-formed but invalid value (field)");
    }
    for (status, codes) in &e.errors {
        add(*status, codes);
    }
    if e.auth != Auth::Public {
        add(500, "internal");
    }
    all
}

fn path_params(path: &str) -> Vec<&str> {
    path.split('/')
        .filter_map(|s| s.strip_prefix('{')?.strip_suffix('}'))
        .collect()
}

/// Every error: `{"error": "<code>", "message": "…", …details}`.
#[derive(Serialize, ToSchema)]
struct ErrorBody {
    /// A snake_case code (`seat_cap_reached`, `not_found`, `invalid`, …).
    error: String,
    /// What went wrong, for people.
    message: String,
    /// 422 `invalid`: the field at fault.
    field: Option<String>,
    /// 409 `seat_cap_reached`, 429 `rate_limited`: seconds until a retry may succeed.
    retry_after: Option<u64>,
}

/// `POST /v1/orgs` answers the org, its owner and the owner's key (shown once).
#[derive(Serialize, ToSchema)]
struct FoundedOrg {
    id: String,
    name: String,
    owner: FoundedOwner,
    owner_api_key: String,
}

#[derive(Serialize, ToSchema)]
struct FoundedOwner {
    id: String,
    email: String,
}

/// A fresh activation token.
#[derive(Serialize, ToSchema)]
struct Refreshed {
    token: String,
    #[schema(format = DateTime)]
    expires_at: String,
}

/// A project assignment: `user` or `group`, and role ids.
#[derive(Serialize, ToSchema)]
struct Assignment {
    user: Option<String>,
    group: Option<String>,
    roles: Vec<String>,
}

/// A page of the audit log.
#[derive(Serialize, ToSchema)]
struct AuditPage {
    items: Vec<reports::AuditView>,
    /// The id to pass as `?before=` for older entries; null on the last page.
    next: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each method of a path is registered once, and every registered route is in the
    /// description with a summary and at least one answer.
    #[test]
    fn every_route_is_described_once() {
        let doc = serde_json::to_value(openapi()).unwrap();
        let mut seen = std::collections::HashSet::new();
        for e in endpoints() {
            assert!(
                seen.insert((e.method.clone(), e.path)),
                "{} {} twice",
                e.method,
                e.path
            );
            if e.path == OPENAPI {
                assert!(doc["paths"][OPENAPI].is_null());
                continue;
            }
            let op = &doc["paths"][e.path][e.method.as_str().to_lowercase()];
            assert!(op.is_object(), "{} {} not described", e.method, e.path);
            assert!(!op["summary"].as_str().unwrap_or_default().is_empty());
            assert!(op["responses"].as_object().is_some_and(|r| !r.is_empty()));
        }
        // Every reference resolves.
        let text = doc.to_string();
        for piece in text.split("\"$ref\":\"#/components/schemas/").skip(1) {
            let name = &piece[..piece.find('"').unwrap()];
            assert!(
                doc["components"]["schemas"][name].is_object(),
                "{name} missing"
            );
        }
    }
}
