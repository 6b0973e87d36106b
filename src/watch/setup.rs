//! What a station starts before its first frame: the framebuffer, the board the endpoints read,
//! the live view and the HTTP server, and the snapshot folder.

use super::board::Board;
use super::config::StationConfig;
use super::{framebuffer, http, live};
use crate::model::Model;
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
    /// JPEG quality of snapshots and of the live stream.
    pub quality: u8,
}

impl Outputs {
    pub fn start(model: &Model, source: &str, cfg: &StationConfig) -> Result<Self> {
        let framebuffer = match &cfg.overlay.framebuffer {
            Some(p) => Some(framebuffer::Framebuffer::open(
                p,
                cfg.overlay.framebuffer_geometry,
            )?),
            None => None,
        };
        let board = Arc::new(Board::new(format!(
            "{} model · {} · ROI x {} y {} w {} h {} · threshold {}",
            model.info.name,
            source,
            cfg.roi.x,
            cfg.roi.y,
            cfg.roi.width,
            cfg.roi.height,
            cfg.verdict.threshold
        )));
        let quality = cfg.overlay.jpeg_quality.unwrap_or(85);
        let view = Arc::new(live::Live::new(quality));
        let (http, encoder) = match cfg.http.bind()? {
            Some(addr) => {
                let server = http::HttpServer::start(
                    addr,
                    cfg.http.token.clone(),
                    board.clone(),
                    view.clone(),
                )?;
                eprintln!(
                    "tag watch: serving the live page on http://{}/ (also /stream.mjpg, /metrics, /healthz, /verdicts){}",
                    server.addr,
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
        })
    }

    /// Ends the live view's encoder and the HTTP server.
    pub fn close(mut self) {
        self.view.close();
        if let Some(e) = self.encoder.take() {
            let _ = e.join();
        }
        drop(self.http);
    }
}
