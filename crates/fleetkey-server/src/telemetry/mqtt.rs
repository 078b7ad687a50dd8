//! Telemetry to an MQTT broker (rumqttc): each message is published, QoS 1 (at
//! least once), to `<prefix>/<fleet>/<device id>/telemetry` as the same JSON object
//! the JSON-lines sink writes. [`TelemetrySink::flush`] returns once the broker
//! has acknowledged everything published so far (PUBACK), so an acknowledgement
//! to a device means the broker has the message.

use super::{TelemetryRecord, TelemetrySink};
use crate::error::{Error, Result};
use rumqttc::{AsyncClient, Event, EventLoop, MqttOptions, Packet, QoS};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::sync::Notify;

/// How long a flush waits for the broker's acknowledgements.
pub const FLUSH_TIMEOUT: Duration = Duration::from_secs(10);

/// Publishes telemetry to a broker.
pub struct MqttSink {
    client: AsyncClient,
    prefix: String,
    published: AtomicU64,
    acked: Arc<AtomicU64>,
    progress: Arc<Notify>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for MqttSink {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// `mqtt://host:port` (or `tcp://`), port 1883 by default.
pub fn parse_url(url: &str) -> Result<(String, u16)> {
    let bad = || Error::Invalid {
        what: "telemetry_mqtt_url",
        why: format!("{url:?} is not mqtt://host[:port]"),
    };
    let rest = url
        .strip_prefix("mqtt://")
        .or_else(|| url.strip_prefix("tcp://"))
        .ok_or_else(bad)?
        .trim_end_matches('/');
    if rest.is_empty() || rest.contains('/') || rest.contains('@') {
        return Err(bad());
    }
    match rest.rsplit_once(':') {
        Some((host, port)) if !host.is_empty() => {
            Ok((host.to_owned(), port.parse().map_err(|_| bad())?))
        }
        Some(_) => Err(bad()),
        None => Ok((rest.to_owned(), 1883)),
    }
}

impl MqttSink {
    /// Connects to the broker at `url` as `client_id`; topics start with `prefix`.
    pub async fn connect(url: &str, client_id: &str, prefix: &str) -> Result<Self> {
        let (host, port) = parse_url(url)?;
        let mut opts = MqttOptions::new(client_id, host, port);
        opts.set_keep_alive(Duration::from_secs(30));
        opts.set_max_packet_size(256 * 1024, 256 * 1024);
        let (client, mut eventloop) = AsyncClient::new(opts, 1024);
        // The first poll connects: fail now rather than on the first message.
        match tokio::time::timeout(Duration::from_secs(10), eventloop.poll()).await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => {
                return Err(Error::Sink {
                    sink: "MQTT broker",
                    why: format!("{url}: {e}"),
                });
            }
            Err(_) => {
                return Err(Error::Sink {
                    sink: "MQTT broker",
                    why: format!("{url}: no answer"),
                });
            }
        }
        let acked = Arc::new(AtomicU64::new(0));
        let progress = Arc::new(Notify::new());
        let task = tokio::spawn(drive(eventloop, acked.clone(), progress.clone()));
        Ok(Self {
            client,
            prefix: prefix.trim_end_matches('/').to_owned(),
            published: AtomicU64::new(0),
            acked,
            progress,
            task,
        })
    }
}

/// Polls the event loop (reconnecting after errors) and counts acknowledgements.
async fn drive(mut eventloop: EventLoop, acked: Arc<AtomicU64>, progress: Arc<Notify>) {
    loop {
        match eventloop.poll().await {
            Ok(Event::Incoming(Packet::PubAck(_))) => {
                acked.fetch_add(1, Ordering::AcqRel);
                progress.notify_waiters();
            }
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(error = %e, "MQTT connection lost; reconnecting");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
}

#[async_trait::async_trait]
impl TelemetrySink for MqttSink {
    async fn deliver(&self, record: &TelemetryRecord) -> Result<()> {
        let body = serde_json::to_vec(record)
            .map_err(|e| Error::Internal(format!("telemetry record: {e}")))?;
        let topic = format!(
            "{}/{}/{}/telemetry",
            self.prefix, record.fleet, record.device_id
        );
        self.client
            .publish(topic, QoS::AtLeastOnce, false, body)
            .await
            .map_err(|e| Error::Sink {
                sink: "MQTT broker",
                why: format!("publish: {e}"),
            })?;
        self.published.fetch_add(1, Ordering::AcqRel);
        Ok(())
    }

    async fn flush(&self) -> Result<()> {
        let target = self.published.load(Ordering::Acquire);
        let wait = async {
            loop {
                let notified = self.progress.notified();
                if self.acked.load(Ordering::Acquire) >= target {
                    return;
                }
                notified.await;
            }
        };
        tokio::time::timeout(FLUSH_TIMEOUT, wait)
            .await
            .map_err(|_| Error::Sink {
                sink: "MQTT broker",
                why: "did not acknowledge in time".into(),
            })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn broker_urls() {
        assert_eq!(
            parse_url("mqtt://127.0.0.1:1883").unwrap(),
            ("127.0.0.1".into(), 1883)
        );
        assert_eq!(parse_url("tcp://broker").unwrap(), ("broker".into(), 1883));
        for bad in [
            "http://x",
            "mqtt://",
            "mqtt://:1",
            "mqtt://h:port",
            "mqtt://u@h",
            "mqtt://h/x",
        ] {
            assert!(parse_url(bad).is_err(), "{bad}");
        }
    }
}
