//! `tag review DIR`: label a station's collection in a browser, without a camera.

use crate::shared::stop_on_signals;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use tagger::error::Error;
use tagger::watch::config::HttpSection;
use tagger::watch::http::{HttpServer, Routes};

#[derive(clap::Args)]
#[command(after_help = "\
Examples:
  tag review collected/                  then open http://127.0.0.1:8090/review
  tag review /mnt/station7/collected --http 0.0.0.0:8090 --http-token s3cret

Keys on the page: 1-9 and letters for the classes, x not a product, s skip, u undo.
Decisions go to DIR/labels.csv (one line each, the last one on an item wins).")]
pub struct ReviewArgs {
    /// The collection made by `tag watch --collect DIR`.
    dir: PathBuf,
    /// Listen on PORT (127.0.0.1) or HOST:PORT; another machine needs --http-token.
    #[arg(long, value_name = "ADDR", default_value = "8090")]
    http: String,
    /// Token every request must carry (?token= or Authorization: Bearer); also TAG_HTTP_TOKEN.
    #[arg(long, env = "TAG_HTTP_TOKEN", hide_env_values = true)]
    http_token: Option<String>,
}

pub fn run(args: ReviewArgs) -> Result<(), Error> {
    let section = HttpSection {
        addr: Some(args.http.clone()),
        token: args.http_token.clone(),
        review: true,
    };
    let addr = section
        .bind()
        .map_err(Error::Config)?
        .expect("an address was given");
    let manifest = tagger::collect::store::Manifest::read(&args.dir)
        .map_err(|e| Error::Usage(format!("{e:#}")))?;
    let items = tagger::collect::store::read_items(&args.dir)
        .map_err(|e| Error::Usage(format!("{e:#}")))?;
    let review = tagger::review::Review::open(args.dir.clone()).map_err(Error::Config)?;
    let routes = Routes {
        review: Some(Arc::new(review)),
        ..Routes::default()
    };
    let server = HttpServer::start(addr, section.token.clone(), routes).map_err(Error::Station)?;
    eprintln!(
        "tag review: {} items collected by {} in {}; label them on http://{}/review{}",
        items.len(),
        manifest.model.name,
        args.dir.display(),
        server.addr,
        if section.token.is_some() {
            " (token required)"
        } else {
            ""
        }
    );
    let stop = stop_on_signals("tag review", "stop it with SIGKILL");
    while !stop.load(Ordering::Relaxed) {
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    Ok(())
}
