//! What a station starts before its first frame: the framebuffer, the board the endpoints read,
//! the live view and the HTTP server, the snapshot folder, the MQTT publisher and the collection
//! of frames for review.

use super::board::Board;
use super::config::StationConfig;
use super::{framebuffer, http, live};
use crate::model::Model;
use crate::publish::{PublishStatus, Publisher};
use anyhow::{Context, Result};
use std::sync::Arc;
use std::thread::JoinHandle;

pub struct Outputs {
    pub framebuffer: Option<framebuffer::Framebuffer>,
    /// Set once a framebuffer write failed: the station goes on without it.
    pub framebuffer_failed: bool,
    /// The HTTP endpoints read it; inference writes it whether or not they run.
    pub board: Arc<Board>,
    pub view: Arc<live::Live>,
    pub http: Option<http::HttpServer>,
    encoder: Option<JoinHandle<()>>,
    /// Verdicts to the broker (`[mqtt]`), through the outbox.
    pub publisher: Option<Publisher>,
    /// JPEG quality of snapshots and of the live stream.
    pub quality: u8,
    /// Frames kept for review (`[collect]`).
    pub collector: Option<crate::collect::Collector>,
}

/// What a collection's reviewer picks from: `model`'s classes.
pub fn manifest(model: &Model, sha256: &str) -> crate::collect::store::Manifest {
    crate::collect::store::Manifest {
        classes: model.info.labels.clone(),
        model: crate::collect::store::ModelRef::new(model, sha256),
    }
}

impl Outputs {
    pub fn start(model: &Model, opts: &super::WatchOptions, cfg: &StationConfig) -> Result<Self> {
        let source = opts.source;
        let framebuffer = match &cfg.overlay.framebuffer {
            Some(p) => Some(framebuffer::Framebuffer::open(
                p,
                cfg.overlay.framebuffer_geometry,
            )?),
            None => None,
        };
        let board = Arc::new(Board::new(
            format!(
                "{} model · {} · ROI x {} y {} w {} h {} · threshold {}",
                model.info.name,
                source,
                cfg.roi.x,
                cfg.roi.y,
                cfg.roi.width,
                cfg.roi.height,
                cfg.verdict.threshold
            ),
            super::reload::ModelId::new(model, opts.origin.model_sha256.clone()),
        ));
        // Weak: the board holds the publisher's monitor, and the outbox must close when the
        // station ends.
        let counters = Arc::downgrade(&board);
        let publisher = Publisher::start(
            &cfg.mqtt,
            opts.origin.clone(),
            Box::new(move || counters.upgrade().map(|b| b.summary()).unwrap_or_default()),
        )?;
        if let Some(p) = &publisher {
            board.publishing(p.monitor());
        }
        let collector = crate::collect::Collector::start(
            &cfg.collect,
            &manifest(model, &opts.origin.model_sha256),
        )?;
        let quality = cfg.overlay.jpeg_quality.unwrap_or(85);
        let view = Arc::new(live::Live::new(quality));
        let review = match (&cfg.collect.dir, cfg.http.reviewable()) {
            (Some(dir), true) => Some(Arc::new(crate::review::Review::open(dir.clone())?)),
            _ => None,
        };
        if let Some(c) = &collector {
            board.collecting(c.stats.clone(), review.is_some() && cfg.http.addr.is_some());
        }
        let (http, encoder) = match cfg.http.bind()? {
            Some(addr) => {
                let routes = http::Routes {
                    board: Some(board.clone()),
                    live: Some(view.clone()),
                    review: review.clone(),
                };
                let server = http::HttpServer::start(addr, cfg.http.token.clone(), routes)?;
                eprintln!(
                    "tag watch: serving the live page on http://{}/ (also /stream.mjpg, /metrics, /healthz, /verdicts{}){}",
                    server.addr,
                    if review.is_some() { ", /review" } else { "" },
                    if cfg.http.token.is_some() {
                        " (token required)"
                    } else {
                        ""
                    }
                );
                (Some(server), Some(view.start_encoder()))
            }
            None => (None, None),
        };
        if let Some(dir) = &cfg.overlay.snapshots {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("cannot create snapshot folder {}", dir.display()))?;
        }
        Ok(Self {
            framebuffer,
            framebuffer_failed: false,
            board,
            view,
            http,
            encoder,
            quality,
            publisher,
            collector,
        })
    }

    /// Ends the live view's encoder, the HTTP server and the publisher (which sends what it
    /// can first); the publisher's last figures.
    pub fn close(mut self) -> Option<PublishStatus> {
        self.view.close();
        if let Some(e) = self.encoder.take() {
            let _ = e.join();
        }
        drop(self.http);
        if let Some(c) = self.collector.as_mut() {
            c.close();
        }
        self.publisher.take().map(Publisher::close)
    }
}
