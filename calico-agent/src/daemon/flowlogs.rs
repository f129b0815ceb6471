//! The daemon's flow logs (`--flow-logs`): a thread reading the netlink log group in the
//! daemon's network namespace ([`crate::flows::run`]), a task keeping the records' naming
//! in step with the model, and what `GET /flows` and `/status` show.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use calico_core::agent::{AgentHandle, Compiled};
use calico_core::compile::FlowLogConfig;
use calico_linux::flowlog::FlowLogReader;
use hyper::body::Bytes;
use serde_json::{json, Value};
use tokio::sync::{broadcast, mpsc};
use tracing::{info, warn};

use crate::flows::{self, FlowMetrics, FlowSettings, FlowState, Namer};
use crate::http::Page;

/// The compiler's flow-log settings for `settings` (denied packets: the default rate).
pub fn compile_config(settings: &FlowSettings) -> FlowLogConfig {
    FlowLogConfig {
        group: settings.group,
        ..FlowLogConfig::default()
    }
}

/// The running flow logs.
pub struct FlowLogs {
    /// What the reading thread records.
    pub state: Arc<FlowState>,
    /// The metrics (registered by the caller).
    pub metrics: FlowMetrics,
    stop: Arc<AtomicBool>,
    reader: Option<JoinHandle<()>>,
    namer: tokio::task::JoinHandle<()>,
}

impl FlowLogs {
    /// Binds the log group (in this process's network namespace) and starts reading it and
    /// naming what it reads after the rules `handle`'s agent compiled for `node`.
    pub fn start(
        settings: FlowSettings,
        handle: AgentHandle,
        node: String,
    ) -> Result<FlowLogs, String> {
        // recv waits at most this long, so the thread notices the stop soon.
        let reader = FlowLogReader::open(settings.group, Duration::from_millis(200))
            .map_err(|e| format!("--flow-log-group {}: {e}", settings.group))?;
        let state = Arc::new(FlowState::new(settings.recent, MAX_FOLLOWERS));
        let metrics = FlowMetrics::default();
        let stop = Arc::new(AtomicBool::new(false));
        let namer = tokio::spawn(keep_naming(handle, node, settings.interval, state.clone()));
        let (s, m, st) = (state.clone(), metrics.clone(), stop.clone());
        let reader = std::thread::Builder::new()
            .name("flow-logs".into())
            .spawn(move || flows::run(reader, &settings, &s, &m, &st))
            .map_err(|e| format!("flow logs: cannot start the reading thread: {e}"))?;
        info!("flow logs on");
        Ok(FlowLogs {
            state,
            metrics,
            stop,
            reader: Some(reader),
            namer,
        })
    }

    /// Stops reading (within the reader's timeout).
    pub fn stop(mut self) {
        self.namer.abort();
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.reader.take() {
            if t.join().is_err() {
                warn!("flow logs: the reading thread panicked");
            }
        }
    }
}

/// Rebuilds the namer whenever the agent's compiled state has changed, checking every
/// `every` or every second, whichever is more often (records are named at the end of their
/// interval). It names the rules the agent compiled, with its own settings and interface
/// addresses: a compile of its own would miss the chains of host endpoints found by their
/// `expectedIPs`, among others.
async fn keep_naming(handle: AgentHandle, node: String, every: Duration, state: Arc<FlowState>) {
    let mut last: Option<u64> = None;
    loop {
        let news = match last {
            Some(revision) => handle.compiled_since(revision).await,
            None => handle.compiled().await.map(Some),
        };
        let Ok(news) = news else {
            return;
        };
        if let Some(compiled) = news {
            let namer = Arc::new(namer_of(&compiled, &node));
            *state.namer.lock().unwrap_or_else(|e| e.into_inner()) = namer;
            last = Some(compiled.revision);
        }
        tokio::time::sleep(every.min(Duration::from_secs(1))).await;
    }
}

/// The naming of what the agent compiled for `node`.
fn namer_of(compiled: &Compiled, node: &str) -> Namer {
    let Compiled {
        model,
        ruleset,
        interface_addresses,
        ..
    } = compiled;
    Namer::with_interfaces(model, node, interface_addresses, ruleset.clone())
}

/// Clients following `/flows` at once, at most.
pub const MAX_FOLLOWERS: usize = 8;

const NDJSON: &str = "application/x-ndjson";

/// `GET /flows`: the recent records, one JSON object a line. With `follow=1` in `query`, the
/// response goes on with each interval's records as they are made, until the client goes or
/// falls [`crate::flows::FlowState::follow`]'s backlog behind (then it ends, and the client
/// reconnects).
pub fn page(state: &FlowState, query: &str) -> Page {
    let follow = query
        .split('&')
        .any(|kv| kv == "follow=1" || kv == "follow=true");
    if !follow {
        return Page::ok(NDJSON, state.recent_lines());
    }
    let Ok(permit) = state.followers.clone().try_acquire_owned() else {
        return Page::with_status(
            hyper::StatusCode::SERVICE_UNAVAILABLE,
            "text/plain; charset=utf-8",
            format!("{MAX_FOLLOWERS} clients already follow /flows; try again later\n"),
        );
    };
    let (recent, live) = state.follow();
    let (tx, rx) = mpsc::channel(4);
    tokio::spawn(async move {
        let _permit = permit;
        forward(live, tx).await;
    });
    Page::stream(NDJSON, recent, rx)
}

/// Sends what `live` gives to `tx` until the client is gone, the records stop or the client
/// falls behind.
async fn forward(mut live: broadcast::Receiver<Bytes>, tx: mpsc::Sender<Bytes>) {
    loop {
        let lines = tokio::select! {
            _ = tx.closed() => return,
            r = live.recv() => r,
        };
        match lines {
            Ok(lines) => {
                if tx.send(lines).await.is_err() {
                    return;
                }
            }
            Err(broadcast::error::RecvError::Lagged(missed)) => {
                warn!(
                    missed,
                    "a client following /flows fell behind; its stream ends"
                );
                return;
            }
            Err(broadcast::error::RecvError::Closed) => return,
        }
    }
}

/// The `/status` section.
pub fn status(flows: Option<&FlowState>, metrics: Option<&FlowMetrics>) -> Value {
    json!({
        "enabled": flows.is_some(),
        "records": flows.map_or(0, |f| f.recorded.load(Ordering::Relaxed)),
        "dropped": metrics.map_or(0, |m| m.dropped.get()),
    })
}

#[cfg(test)]
mod tests {
    use calico_core::agent::Agent;
    use calico_core::compile::{HostPath, LogRef, LogRule};
    use calico_core::dataplane::ir::{Ruleset, Statement};
    use calico_core::model::parse_resources;
    use calico_linux::flowlog::{FiveTuple, LogPacket};
    use calico_mock::{MockAcl, MockFib};

    use super::*;
    use crate::flows::{Aggregator, FlowRecord};

    /// A host endpoint naming no interface: it governs the one holding its address.
    const UPLINK: &str =
        "kind: HostEndpoint\nname: h1-uplink\nnode: h1\nexpectedIPs: [192.0.2.1]\n";

    /// The log prefix of `chain`'s final drop in `ruleset`.
    fn end_drop_prefix(ruleset: &Ruleset, chain: &str) -> String {
        let rules = ruleset.chains.get(chain).map(|c| &c.rules);
        rules
            .into_iter()
            .flatten()
            .flat_map(|r| &r.statements)
            .filter_map(|s| match s {
                Statement::NfLog { prefix, .. } => Some(prefix.clone()),
                _ => None,
            })
            .find(|p| p.parse::<LogRef>().is_ok_and(|l| l.rule == LogRule::End))
            .unwrap_or_else(|| panic!("no logged end-of-chain drop in {chain}: {ruleset:#?}"))
    }

    /// The record of one packet to 192.0.2.1 logged with `prefix`, named by `state`'s namer.
    fn record(state: &FlowState, prefix: &str) -> FlowRecord {
        let namer = state.namer.lock().unwrap().clone();
        let packet = LogPacket {
            prefix: prefix.into(),
            in_ifindex: Some(2),
            out_ifindex: None,
            tuple: Some(FiveTuple {
                src: "198.51.100.7".parse().unwrap(),
                dst: "192.0.2.1".parse().unwrap(),
                proto: 6,
                src_port: 40000,
                dst_port: 8080,
            }),
            bytes: 60,
            icmp: None,
        };
        let mut agg = Aggregator::new(10);
        agg.add(&namer, &packet, &|_| None, 1);
        agg.flush(&namer).remove(0)
    }

    /// The daemon names the chains its agent programmed: those of a host endpoint found by
    /// its `expectedIPs` (on eth0, which holds the address) too, which a compile without
    /// the host's interface addresses has not.
    #[tokio::test]
    async fn records_of_a_host_endpoint_found_by_its_address_name_it() {
        let fib = MockFib::new();
        fib.add_interface("eth0");
        fib.add_address("eth0", "192.0.2.1".parse().unwrap());
        let acl = MockAcl::new();
        let agent = Agent::builder()
            .node("h1")
            .fib(Arc::new(fib))
            .acl(Arc::new(acl.clone()))
            .flow_logs(FlowLogConfig::default())
            .start()
            .unwrap();
        let handle = agent.handle();
        handle
            .snapshot(parse_resources(UPLINK).unwrap())
            .await
            .unwrap();
        handle.flush().await;
        let prefix = end_drop_prefix(&acl.ruleset(), &HostPath::In.chain("eth0"));

        let state = Arc::new(FlowState::new(10, 1));
        let every = Duration::from_millis(10);
        let naming = tokio::spawn(keep_naming(handle, "h1".into(), every, state.clone()));
        let mut named = record(&state, &prefix);
        for _ in 0..200 {
            if named.policy_kind != "unknown" {
                break;
            }
            tokio::time::sleep(every).await;
            named = record(&state, &prefix);
        }
        naming.abort();
        agent.shutdown().await;
        assert_eq!(
            (named.policy_kind.as_str(), named.policy.as_str()),
            ("endpoint", "h1-uplink"),
            "{named:#?}"
        );
        assert_eq!(named.verdict, "deny", "{named:#?}");
    }
}
