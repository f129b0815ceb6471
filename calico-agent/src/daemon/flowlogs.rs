//! The daemon's flow logs (`--flow-logs`): a thread reading the netlink log group in the
//! daemon's network namespace ([`crate::flows::run`]), a task keeping the records' naming
//! in step with the model, and what `GET /flows` and `/status` show.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use calico_core::agent::AgentHandle;
use calico_core::compile::{compile, CompileConfig, FlowLogConfig};
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
    /// naming what it reads after `handle`'s model, compiled for `node`.
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
        let namer = tokio::spawn(keep_naming(
            handle,
            node,
            compile_config(&settings),
            settings.interval,
            state.clone(),
        ));
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

/// Rebuilds the namer whenever the model has changed, checking every `every` or every
/// second, whichever is more often (records are named at the end of their interval).
async fn keep_naming(
    handle: AgentHandle,
    node: String,
    flow_logs: FlowLogConfig,
    every: Duration,
    state: Arc<FlowState>,
) {
    let config = CompileConfig {
        flow_logs: Some(flow_logs),
        ..CompileConfig::new(node.clone())
    };
    let mut last: Option<Arc<calico_core::model::Model>> = None;
    loop {
        let Ok(model) = handle.model().await else {
            return;
        };
        if last.as_deref() != Some(&*model) {
            let ruleset = compile(&config, &model);
            let namer = Arc::new(Namer::new(&model, &node, &ruleset));
            *state.namer.lock().unwrap_or_else(|e| e.into_inner()) = namer;
            last = Some(model);
        }
        tokio::time::sleep(every.min(Duration::from_secs(1))).await;
    }
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
