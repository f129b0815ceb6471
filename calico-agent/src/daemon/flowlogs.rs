//! The daemon's flow logs (`--flow-logs`): a thread reading the netlink log group in the
//! daemon's network namespace ([`crate::flows::run`]), a task keeping the records' naming
//! in step with the model, and what `GET /flows` and `/status` show.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use calico_core::agent::AgentHandle;
use calico_core::compile::{compile, CompileConfig, FlowLogConfig};
use calico_linux::flowlog::FlowLogReader;
use serde_json::{json, Value};
use tracing::{info, warn};

use crate::flows::{self, FlowMetrics, FlowSettings, FlowState, Namer, RecentFlows};
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
        let state = Arc::new(FlowState {
            recent: Mutex::new(RecentFlows::new(settings.recent)),
            namer: Mutex::new(Arc::new(Namer::default())),
            recorded: Default::default(),
        });
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

/// `GET /flows`: the recent records, one JSON object a line.
pub fn page(state: &FlowState) -> Page {
    let body = state
        .recent
        .lock()
        .map(|r| r.json_lines())
        .unwrap_or_default();
    Page::ok("application/x-ndjson", body)
}

/// The `/status` section.
pub fn status(flows: Option<&FlowState>, metrics: Option<&FlowMetrics>) -> Value {
    json!({
        "enabled": flows.is_some(),
        "records": flows.map_or(0, |f| f.recorded.load(Ordering::Relaxed)),
        "dropped": metrics.map_or(0, |m| m.dropped.get()),
    })
}
