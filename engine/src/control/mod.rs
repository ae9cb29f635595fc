//! The control plane: JSON-RPC 2.0 over HTTP/1.1 and Prometheus metrics on a loopback address,
//! and the blocking client behind `sipshard ctl`.
//!
//! The server runs as a task on shard 0 (a glommio executor like any other); methods that need
//! another shard's state reach it over the shard mesh. HTTP requests are parsed with `httparse`;
//! every connection carries one request and is closed after the response.

mod client;
mod http;

pub use client::{call, params_from_args, CtlError};
pub use http::{serve, Access, Handler, HttpResponse, LocalFuture, RpcError};
