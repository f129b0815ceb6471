//! Logged packets → flow records over an interval, in bounded memory: at most `max_flows`
//! distinct flows are counted per interval; packets of further flows are counted as
//! dropped.

use std::collections::{HashMap, VecDeque};
use std::io::Write;
use std::path::Path;

use calico_core::compile::LogRef;
use calico_linux::flowlog::{FiveTuple, LogPacket};

use super::record::{record, Decision, FlowRecord, Namer, Unnamed};

/// Counts of one flow in the current interval.
#[derive(Clone, Debug)]
struct Counts {
    packets: u64,
    bytes: u64,
    first_ms: u64,
    last_ms: u64,
}

/// Flows of the current interval, by 5-tuple and decision.
#[derive(Debug)]
pub struct Aggregator {
    max_flows: usize,
    flows: HashMap<(FiveTuple, Decision), Counts>,
    /// Packets of flows not counted because `max_flows` were already counted, so far.
    pub dropped_packets: u64,
    /// Packets whose prefix or headers could not be read, so far.
    pub unreadable: u64,
    /// First packets the rules replayed do not allow, so far ([`Unnamed::Unattributed`]).
    pub unattributed: u64,
}

impl Aggregator {
    /// An aggregator counting at most `max_flows` distinct flows per interval.
    pub fn new(max_flows: usize) -> Aggregator {
        Aggregator {
            max_flows,
            flows: HashMap::new(),
            dropped_packets: 0,
            unreadable: 0,
            unattributed: 0,
        }
    }

    /// Counts one logged packet seen at `now_ms` ([`Namer::reports`] what it reports, `iface`
    /// naming interfaces by index); returns its decisions (for the per-policy counters),
    /// none when it names none.
    pub fn add(
        &mut self,
        namer: &Namer,
        p: &LogPacket,
        iface: &dyn Fn(u32) -> Option<String>,
        now_ms: u64,
    ) -> Vec<Decision> {
        let (logs, Some(tuple)) = (namer.reports(p, iface), p.tuple) else {
            self.unreadable += 1;
            return Vec::new();
        };
        match logs {
            Ok(logs) => logs
                .iter()
                .filter_map(|log| self.count(namer, p, tuple, log, now_ms))
                .collect(),
            Err(Unnamed::Unreadable) => {
                self.unreadable += 1;
                Vec::new()
            }
            Err(Unnamed::Unattributed) => {
                self.unattributed += 1;
                Vec::new()
            }
        }
    }

    /// Counts one decision `log` of the packet `p` (of the flow `tuple`).
    fn count(
        &mut self,
        namer: &Namer,
        p: &LogPacket,
        tuple: FiveTuple,
        log: &LogRef,
        now_ms: u64,
    ) -> Option<Decision> {
        let decision = namer.decision(log);
        let full = self.flows.len() >= self.max_flows;
        let key = (tuple, decision);
        match self.flows.get_mut(&key) {
            Some(c) => {
                c.packets += 1;
                c.bytes += u64::from(p.bytes);
                c.last_ms = now_ms;
            }
            None if full => self.dropped_packets += 1,
            None => {
                self.flows.insert(
                    key.clone(),
                    Counts {
                        packets: 1,
                        bytes: u64::from(p.bytes),
                        first_ms: now_ms,
                        last_ms: now_ms,
                    },
                );
            }
        }
        Some(key.1)
    }

    /// Distinct flows counted in this interval.
    pub fn len(&self) -> usize {
        self.flows.len()
    }

    /// Whether no flow was counted in this interval.
    pub fn is_empty(&self) -> bool {
        self.flows.is_empty()
    }

    /// Bytes the interval's table holds, about (entries and their names).
    pub fn memory_bytes(&self) -> usize {
        let entry = std::mem::size_of::<((FiveTuple, Decision), Counts)>() + 8;
        let names: usize = self
            .flows
            .keys()
            .map(|(_, d)| d.policy.capacity() + d.reason.capacity())
            .sum();
        self.flows.capacity() * entry + names
    }

    /// Ends the interval: its flows as records, oldest first; the table starts empty.
    pub fn flush(&mut self, namer: &Namer) -> Vec<FlowRecord> {
        let mut out: Vec<FlowRecord> = self
            .flows
            .drain()
            .map(|((t, d), c)| record(namer, &t, &d, c.packets, c.bytes, c.first_ms, c.last_ms))
            .collect();
        self.flows.shrink_to(self.max_flows.min(1024));
        out.sort_by_key(|r| (r.first_seen_ms, r.src_ip, r.dst_ip, r.src_port, r.dst_port));
        out
    }
}

/// The most recent records, for `GET /flows`.
#[derive(Debug)]
pub struct RecentFlows {
    cap: usize,
    records: VecDeque<FlowRecord>,
}

impl RecentFlows {
    /// Keeps the last `cap` records.
    pub fn new(cap: usize) -> RecentFlows {
        RecentFlows {
            cap,
            records: VecDeque::new(),
        }
    }

    /// Adds records, forgetting the oldest beyond the cap.
    pub fn extend(&mut self, records: &[FlowRecord]) {
        for r in records {
            if self.records.len() == self.cap {
                self.records.pop_front();
            }
            self.records.push_back(r.clone());
        }
    }

    /// The records as JSON lines, oldest first.
    pub fn json_lines(&self) -> String {
        json_lines(self.records.iter())
    }
}

/// Records as JSON lines.
pub fn json_lines<'a>(records: impl Iterator<Item = &'a FlowRecord>) -> String {
    let mut out = String::new();
    for r in records {
        if let Ok(line) = serde_json::to_string(r) {
            out.push_str(&line);
            out.push('\n');
        }
    }
    out
}

/// Appends records to a file as JSON lines.
pub fn append_to_file(path: &Path, records: &[FlowRecord]) -> std::io::Result<()> {
    if records.is_empty() {
        return Ok(());
    }
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)?;
    f.write_all(json_lines(records.iter()).as_bytes())
}
