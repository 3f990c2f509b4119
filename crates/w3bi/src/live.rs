//! Live chain data: the finalized heads as the node announces them
//! (`logos_subscribeFinalizedHeads` over its WebSocket), with the finality latency the console
//! observes (arrival time less the proposer's timestamp), and the `/events` stream the pages
//! listen to.

use crate::Console;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures::Stream;
use jsonrpsee::ws_client::WsClientBuilder;
use logos_api::rpc::LogosApiClient;
use std::{
    collections::VecDeque,
    convert::Infallible,
    sync::{Arc, Mutex},
    time::Duration,
};

/// Heads kept for the latency and rate figures.
pub const HEADS_MAX: usize = 64;
/// Wait before reconnecting to the node's WebSocket, ms.
pub const RECONNECT_MS: u64 = 1_000;

/// One finalized head as the console saw it arrive.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub struct SeenHead {
    /// Height.
    pub height: u64,
    /// Proposer's timestamp, ms since the Unix epoch.
    pub timestamp_ms: u64,
    /// When the console received it, ms since the Unix epoch.
    pub seen_ms: u64,
}

/// The network's pace over the heads kept.
#[derive(Clone, Copy, Debug, Default, PartialEq, serde::Serialize)]
pub struct Pace {
    /// Latest finalized height seen.
    pub height: u64,
    /// Finality latency of the latest head, ms (arrival less proposal).
    pub latency_ms: u64,
    /// Median finality latency over the heads kept, ms.
    pub latency_ms_p50: u64,
    /// Finalized blocks per second over the heads kept.
    pub blocks_per_s: f64,
    /// Heads the figures are over.
    pub samples: usize,
}

/// The latest heads and a channel that announces each new one.
pub struct Heads {
    recent: Mutex<VecDeque<SeenHead>>,
    announce: tokio::sync::watch::Sender<Pace>,
}

impl Default for Heads {
    fn default() -> Self {
        Self {
            recent: Mutex::new(VecDeque::with_capacity(HEADS_MAX)),
            announce: tokio::sync::watch::channel(Pace::default()).0,
        }
    }
}

impl Heads {
    /// Records a head (older or repeated heights are ignored) and announces the new pace.
    pub fn record(&self, head: SeenHead) {
        let Ok(mut recent) = self.recent.lock() else {
            return;
        };
        if recent.back().is_some_and(|last| last.height >= head.height) {
            return;
        }
        if recent.len() == HEADS_MAX {
            recent.pop_front();
        }
        recent.push_back(head);
        let pace = pace(&recent);
        drop(recent);
        self.announce.send_replace(pace);
    }

    /// The pace now.
    pub fn pace(&self) -> Pace {
        self.recent
            .lock()
            .map(|recent| pace(&recent))
            .unwrap_or_default()
    }

    /// A receiver told of every new pace.
    pub fn subscribe(&self) -> tokio::sync::watch::Receiver<Pace> {
        self.announce.subscribe()
    }
}

/// The pace over `heads` (oldest first).
pub fn pace(heads: &VecDeque<SeenHead>) -> Pace {
    let (Some(first), Some(last)) = (heads.front(), heads.back()) else {
        return Pace::default();
    };
    let latency = |head: &SeenHead| head.seen_ms.saturating_sub(head.timestamp_ms);
    let mut latencies: Vec<u64> = heads.iter().map(latency).collect();
    latencies.sort_unstable();
    let span_ms = last.seen_ms.saturating_sub(first.seen_ms);
    let blocks = last.height.saturating_sub(first.height);
    let blocks_per_s = match span_ms {
        0 => 0.0,
        span => blocks as f64 * 1_000.0 / span as f64,
    };
    Pace {
        height: last.height,
        latency_ms: latency(last),
        latency_ms_p50: latencies[latencies.len() / 2],
        blocks_per_s,
        samples: heads.len(),
    }
}

/// Now, ms since the Unix epoch.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_millis() as u64)
}

/// Follows the node's finalized heads for as long as the console runs, reconnecting after a
/// pause when the connection drops.
pub async fn follow(console: Arc<Console>, rpc: String) {
    let url = rpc
        .replacen("https://", "wss://", 1)
        .replacen("http://", "ws://", 1);
    loop {
        if let Err(error) = follow_once(&console, &url).await {
            tracing::debug!(%error, "finalized heads: reconnecting");
        }
        tokio::time::sleep(Duration::from_millis(RECONNECT_MS)).await;
    }
}

async fn follow_once(console: &Console, url: &str) -> Result<(), jsonrpsee::core::ClientError> {
    let ws = WsClientBuilder::default().build(url).await?;
    let mut heads = ws.subscribe_finalized_heads().await?;
    while let Some(head) = heads.next().await {
        let head = head.map_err(|error| jsonrpsee::core::ClientError::Custom(error.to_string()))?;
        console.heads.record(SeenHead {
            height: head.height,
            timestamp_ms: head.timestamp_ms,
            seen_ms: now_ms(),
        });
    }
    Ok(())
}

/// `GET /events`: a `pace` event (JSON [`Pace`]) at each new finalized head.
pub fn events(console: &Console) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let receiver = console.heads.subscribe();
    let stream = futures::stream::unfold(receiver, |mut receiver| async move {
        receiver.changed().await.ok()?;
        let pace = *receiver.borrow_and_update();
        let event = Event::default()
            .event("pace")
            .json_data(pace)
            .unwrap_or_default();
        Some((Ok(event), receiver))
    });
    Sse::new(stream).keep_alive(KeepAlive::default())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(height: u64, timestamp_ms: u64, seen_ms: u64) -> SeenHead {
        SeenHead {
            height,
            timestamp_ms,
            seen_ms,
        }
    }

    #[test]
    fn the_pace_is_the_median_latency_and_the_rate_over_the_heads_kept() {
        let heads = Heads::default();
        assert_eq!(heads.pace(), Pace::default());
        heads.record(head(10, 1_000, 1_300));
        heads.record(head(11, 1_500, 1_700));
        heads.record(head(12, 2_000, 2_300));
        // Repeated or older heights (a reconnect replays) change nothing.
        heads.record(head(11, 1_500, 9_000));
        let pace = heads.pace();
        assert_eq!(
            (pace.height, pace.latency_ms, pace.latency_ms_p50),
            (12, 300, 300)
        );
        assert_eq!(pace.blocks_per_s, 2.0);
        for height in 13..13 + 2 * HEADS_MAX as u64 {
            heads.record(head(height, height * 500, height * 500 + 100));
        }
        assert_eq!(heads.pace().samples, HEADS_MAX);
        assert_eq!(heads.pace().latency_ms_p50, 100);
    }
}
