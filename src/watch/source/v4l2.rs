//! V4L2 cameras (`/dev/videoN`): USB cameras, and the Raspberry Pi camera through libcamera's
//! V4L2 compatibility layer. Kept thin on purpose: open, pick MJPEG (or YUYV), stream, and hand
//! the bytes on; everything else is the same as for any other source.

use super::FrameSource;
use crate::watch::config::SourceSection;
use anyhow::Result;
use std::path::Path;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

#[cfg(target_os = "linux")]
pub fn open(
    dev: &Path,
    cfg: &SourceSection,
    stop: Arc<AtomicBool>,
) -> Result<Box<dyn FrameSource>> {
    Ok(Box::new(linux::V4l2Source::open(dev, cfg, stop)?))
}

#[cfg(not(target_os = "linux"))]
pub fn open(
    dev: &Path,
    _cfg: &SourceSection,
    _stop: Arc<AtomicBool>,
) -> Result<Box<dyn FrameSource>> {
    anyhow::bail!("camera {}: V4L2 cameras need Linux", dev.display())
}

#[cfg(target_os = "linux")]
mod linux {
    use super::super::{FrameData, FrameSource, Reconnecting};
    use crate::watch::config::SourceSection;
    use crate::watch::yuyv::YuyvFrame;
    use anyhow::{anyhow, Context, Result};
    use linuxvideo::format::{PixFormat, PixelFormat};
    use linuxvideo::stream::ReadStream;
    use linuxvideo::{BufType, Device};
    use std::path::{Path, PathBuf};
    use std::sync::atomic::AtomicBool;
    use std::sync::Arc;

    /// What the driver agreed to (it may round the asked size).
    #[derive(Clone, Copy)]
    struct Negotiated {
        width: u32,
        height: u32,
        format: PixelFormat,
        stride: usize,
    }

    pub struct V4l2Source {
        dev: PathBuf,
        cfg: SourceSection,
        conn: Reconnecting<(ReadStream, Negotiated)>,
    }

    fn start(dev: &Path, cfg: &SourceSection) -> Result<(ReadStream, Negotiated)> {
        let device = Device::open(dev).with_context(|| {
            format!(
                "cannot open camera {} (is it plugged in? `ls /dev/video*` lists cameras; the \
                 user needs to be in the `video` group)",
                dev.display()
            )
        })?;
        let formats = device
            .formats(BufType::VIDEO_CAPTURE)
            .map(|f| f.map(|f| f.pixel_format()))
            .collect::<std::io::Result<Vec<_>>>()
            .with_context(|| format!("camera {}: cannot list its formats", dev.display()))?;
        let format = [PixelFormat::MJPG, PixelFormat::JPEG, PixelFormat::YUYV]
            .into_iter()
            .find(|f| formats.contains(f))
            .ok_or_else(|| {
                anyhow!(
                    "camera {} offers {formats:?}; tag watch reads MJPG, JPEG or YUYV",
                    dev.display()
                )
            })?;
        let (w, h) = (cfg.width.unwrap_or(640), cfg.height.unwrap_or(480));
        let capture = device
            .video_capture(PixFormat::new(w, h, format))
            .with_context(|| format!("camera {}: cannot set {w}x{h} {format:?}", dev.display()))?;
        if let Some(fps) = cfg.fps {
            // Best effort: not every driver lets the rate be set.
            let _ =
                capture.set_frame_interval(linuxvideo::Fract::new(1, fps.round().max(1.0) as u32));
        }
        let f = capture.format();
        let negotiated = Negotiated {
            width: f.width(),
            height: f.height(),
            format: f.pixel_format(),
            stride: f.bytes_per_line() as usize,
        };
        let stream = capture
            .into_stream()
            .with_context(|| format!("camera {}: cannot start streaming", dev.display()))?;
        Ok((stream, negotiated))
    }

    impl V4l2Source {
        pub fn open(dev: &Path, cfg: &SourceSection, stop: Arc<AtomicBool>) -> Result<Self> {
            let stream = start(dev, cfg)?;
            eprintln!(
                "tag watch: camera {} streaming {}x{} {:?}",
                dev.display(),
                stream.1.width,
                stream.1.height,
                stream.1.format
            );
            Ok(Self {
                dev: dev.to_path_buf(),
                cfg: cfg.clone(),
                conn: Reconnecting::new(
                    format!("camera {}", dev.display()),
                    stream,
                    cfg.reconnect_max_s,
                    stop,
                ),
            })
        }
    }

    /// One frame: MJPEG/JPEG bytes as they come, YUYV as it comes (converted where it is used).
    fn read(conn: &mut (ReadStream, Negotiated)) -> Result<FrameData> {
        let (stream, fmt) = (&mut conn.0, conn.1);
        Ok(stream.dequeue(|buf| {
            let data = &buf[..];
            Ok(if fmt.format == PixelFormat::YUYV {
                // A short buffer is a corrupt frame, not a lost camera.
                match YuyvFrame::new(data.to_vec(), fmt.width, fmt.height, fmt.stride) {
                    Some(frame) => FrameData::Yuyv(frame),
                    None => FrameData::Unreadable(format!(
                        "YUYV frame of {} bytes is too short for {}x{}",
                        data.len(),
                        fmt.width,
                        fmt.height
                    )),
                }
            } else {
                FrameData::Encoded(data.to_vec())
            })
        })?)
    }

    impl FrameSource for V4l2Source {
        fn next_frame(&mut self) -> Result<Option<FrameData>> {
            let (dev, cfg) = (&self.dev, &self.cfg);
            self.conn.next(read, || start(dev, cfg))
        }

        fn reconnects(&self) -> u64 {
            self.conn.reconnects
        }

        fn is_live(&self) -> bool {
            true
        }
    }
}
