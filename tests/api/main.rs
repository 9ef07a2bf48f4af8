//! Integration tests: the real app on a random port with a fresh sled directory,
//! spoken to over HTTP. One binary, so cargo links once.

mod admin;
mod client;
mod crash;
mod docs;
mod errors;
mod hardening;
mod helpers;
mod ops;
mod projects;
mod routes;
mod seats;
mod sessions;
mod tls;
