//! The JSON API the `calico-rs` tool and the agent's page use, and the page itself:
//!
//! * `GET /api/endpoints`: the workload endpoints on this host, their state, addresses,
//!   labels, interface and the policies that apply ([`crate::explain::EndpointList`]);
//! * `GET /api/trace?from=&to=&proto=tcp|udp|icmp&port=N`: the model's verdict and trace,
//!   the verdicts of the IR compiled now and of the IR read back from the kernel, and
//!   `drift` when the kernel disagrees ([`crate::explain::TraceReport`]); a bad request is
//!   a 400 whose JSON `error` names the parameter;
//! * `GET /api/matrix`: the connectivity policy predicts between this host's endpoints
//!   ([`crate::explain::Matrix`]);
//! * `GET /`: the page (endpoints, matrix, recent flows).

use std::sync::Arc;

use calico_core::agent::AgentHandle;
use calico_core::dataplane::ir::Ruleset;
use calico_core::dataplane::AclBackend;
use calico_core::model::Model;
use hyper::StatusCode;
use serde::Serialize;
use serde_json::json;

use crate::explain::{self, TraceRequest};
use crate::http::Page;

const JSON: &str = "application/json";

/// What the API reads: the agent (its model and status), this node's name and the ACL
/// backend to read the kernel's table back from.
#[derive(Clone)]
pub struct Api {
    /// The agent.
    pub handle: AgentHandle,
    /// This host's node name.
    pub node: String,
    /// The ACL backend whose table is read back (`None`: no ACLs on this host).
    pub readback: Option<Arc<dyn AclBackend>>,
}

fn json_page<T: Serialize>(value: &T) -> Page {
    match serde_json::to_string_pretty(value) {
        Ok(body) => Page::ok(JSON, body + "\n"),
        Err(e) => error_page(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
    }
}

fn error_page(status: StatusCode, error: &str) -> Page {
    Page::with_status(status, JSON, format!("{}\n", json!({ "error": error })))
}

impl Api {
    /// The page at `path` (with `query`), or `None` if it is not one of the API's.
    pub async fn get(&self, path: &str, query: &str) -> Option<Page> {
        if !matches!(path, "/" | "/api/endpoints" | "/api/trace" | "/api/matrix") {
            return None;
        }
        if path == "/api/trace" {
            return Some(self.trace(query).await);
        }
        let model = match self.handle.model().await {
            Ok(m) => m,
            Err(e) => return Some(error_page(StatusCode::SERVICE_UNAVAILABLE, &e.to_string())),
        };
        Some(match path {
            "/api/endpoints" => json_page(&self.endpoints(&model)),
            "/api/matrix" => {
                let kernel = self.kernel().await;
                json_page(&explain::matrix(
                    &model,
                    &self.node,
                    kernel.as_ref().map_err(Clone::clone),
                ))
            }
            _ => {
                let kernel = self.kernel().await;
                let matrix =
                    explain::matrix(&model, &self.node, kernel.as_ref().map_err(Clone::clone));
                Page::ok(
                    "text/html; charset=utf-8",
                    crate::web::render(&self.endpoints(&model), &matrix),
                )
            }
        })
    }

    fn endpoints(&self, model: &Model) -> explain::EndpointList {
        explain::endpoint_list(model, &self.node, &self.handle.status())
    }

    /// The trace of `query`'s packet: the model, the rules the agent compiled from it (with
    /// its settings and the interface addresses it read), the kernel's table.
    async fn trace(&self, query: &str) -> Page {
        let req = match TraceRequest::from_query(query) {
            Ok(r) => r,
            Err(e) => return error_page(StatusCode::BAD_REQUEST, &e.to_string()),
        };
        let compiled = match self.handle.compiled().await {
            Ok(c) => c,
            Err(e) => return error_page(StatusCode::SERVICE_UNAVAILABLE, &e.to_string()),
        };
        let kernel = self.kernel().await;
        match explain::trace(
            &compiled.model,
            &compiled.ruleset,
            &compiled.interface_addresses,
            &self.node,
            kernel.as_ref().map_err(Clone::clone),
            &req,
        ) {
            Ok(mut report) => {
                if !self.handle.status().in_sync {
                    report
                        .notes
                        .push("the agent has not had its first complete snapshot yet".into());
                }
                json_page(&report)
            }
            Err(e) => error_page(StatusCode::BAD_REQUEST, &e.to_string()),
        }
    }

    /// The table read back from the kernel, or why it could not be.
    async fn kernel(&self) -> Result<Ruleset, String> {
        match &self.readback {
            Some(acl) => acl
                .dump()
                .await
                .map_err(|e| format!("reading the ACL table back: {e}")),
            None => Err("this agent programs no ACLs".into()),
        }
    }
}
