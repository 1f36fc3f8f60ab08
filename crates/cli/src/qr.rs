//! Drawing a Key URI as a QR code: in the terminal, as PNG, as SVG.

use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use qrcode::render::{svg, unicode};
use qrcode::{EcLevel, QrCode};

use crate::cli::QrImages;
use crate::failure::Failure;

/// Pixels per QR module in PNG output; 8 keeps a 160-bit URI around 400 px wide.
const PNG_SCALE: usize = 8;
/// The blank margin the QR spec requires, in modules.
const QUIET_ZONE: usize = 4;

fn encode(uri: &str) -> Result<QrCode, Failure> {
    // Level M: survives a smudged screen, and the code stays small enough for a terminal.
    QrCode::with_error_correction_level(uri.as_bytes(), EcLevel::M)
        .map_err(|e| Failure::Error(format!("cannot draw a QR code for this URI: {e}")))
}

/// The QR code as half-block characters, two modules per character row.
pub(crate) fn terminal(uri: &str) -> Result<String, Failure> {
    // Dark modules drawn as spaces on a light block background scan on both light and dark
    // terminal themes.
    Ok(encode(uri)?
        .render::<unicode::Dense1x2>()
        .dark_color(unicode::Dense1x2::Light)
        .light_color(unicode::Dense1x2::Dark)
        .quiet_zone(true)
        .build())
}

/// The image files asked for, created (empty) before anything else happens, so a name that
/// cannot be used stops `enroll` before it stores a record whose backup codes would then never
/// be shown. Files not written by [`ImageFiles::write`] are removed on drop.
#[derive(Debug)]
pub(crate) struct ImageFiles {
    png: Option<NewFile>,
    svg: Option<NewFile>,
}

impl ImageFiles {
    /// Creates every file `images` names; on an error, none is left behind.
    pub(crate) fn create(images: &QrImages) -> Result<ImageFiles, Failure> {
        let png = images.qr_png.as_deref().map(NewFile::create).transpose()?;
        let svg = images.qr_svg.as_deref().map(NewFile::create).transpose()?;
        Ok(ImageFiles { png, svg })
    }

    /// Draws `uri` into the files.
    pub(crate) fn write(mut self, uri: &str) -> Result<(), Failure> {
        if let Some(file) = self.png.take() {
            file.write(&png(uri)?)?;
        }
        if let Some(file) = self.svg.take() {
            let svg = encode(uri)?
                .render::<svg::Color<'_>>()
                .min_dimensions(256, 256)
                .quiet_zone(true)
                .build();
            file.write(svg.as_bytes())?;
        }
        Ok(())
    }
}

fn png(uri: &str) -> Result<Vec<u8>, Failure> {
    let code = encode(uri)?;
    let modules = code.width();
    let side = (modules + 2 * QUIET_ZONE) * PNG_SCALE;
    let colors = code.to_colors();
    let mut pixels = vec![255u8; side * side];
    for (i, color) in colors.iter().enumerate() {
        if *color == qrcode::Color::Dark {
            let (mx, my) = (i % modules + QUIET_ZONE, i / modules + QUIET_ZONE);
            for y in my * PNG_SCALE..(my + 1) * PNG_SCALE {
                pixels[y * side + mx * PNG_SCALE..y * side + (mx + 1) * PNG_SCALE].fill(0);
            }
        }
    }
    let mut out = Vec::new();
    let side32 = u32::try_from(side).map_err(|_| Failure::Error("QR code too large".into()))?;
    let mut encoder = png::Encoder::new(&mut out, side32, side32);
    encoder.set_color(png::ColorType::Grayscale);
    encoder.set_depth(png::BitDepth::Eight);
    encoder
        .write_header()
        .and_then(|mut w| w.write_image_data(&pixels))
        .map_err(|e| Failure::Error(format!("cannot encode PNG: {e}")))?;
    Ok(out)
}

/// A file this process has just created, 0600, removed on drop unless written to the end.
#[derive(Debug)]
struct NewFile {
    path: PathBuf,
    file: Option<File>,
}

impl NewFile {
    /// Creates `path`, which must not exist.
    ///
    /// Only a new file, never one that is there already: the QR code carries the secret, and
    /// `--qr-png /tmp/x.png` run as root would otherwise write it into a file another user
    /// created there first (and reads through the descriptor they keep open, whatever mode it
    /// gets later), or follow their symlink and overwrite a root file (issue 9, item 7).
    /// `O_EXCL` fails on any existing name, a dangling symlink included; `O_NOFOLLOW` says so a
    /// second time.
    fn create(path: &Path) -> Result<NewFile, Failure> {
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .custom_flags(nix::libc::O_NOFOLLOW)
            .mode(0o600)
            .open(path)
            .map_err(|e| match e.kind() {
                std::io::ErrorKind::AlreadyExists => Failure::Error(format!(
                    "{} already exists; the QR image holds the secret, so sshield writes it only \
                     into a new file: name one that does not exist yet, in a directory only you \
                     can write to",
                    path.display()
                )),
                _ => cannot_write(path, &e),
            })?;
        Ok(NewFile {
            path: path.to_owned(),
            file: Some(file),
        })
    }

    fn write(mut self, bytes: &[u8]) -> Result<(), Failure> {
        let Some(file) = self.file.take() else {
            return Ok(());
        };
        let mut w = BufWriter::new(file);
        w.write_all(bytes)
            .and_then(|()| w.flush())
            .map_err(|e| cannot_write(&self.path, &e))?;
        // Written: keep it.
        self.path = PathBuf::new();
        Ok(())
    }
}

impl Drop for NewFile {
    fn drop(&mut self) {
        // Unwritten or half written: of no use to anyone. Only this process created the name.
        if !self.path.as_os_str().is_empty() {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

fn cannot_write(path: &Path, e: &std::io::Error) -> Failure {
    Failure::Error(format!(
        "cannot write {}: {}",
        path.display(),
        sshield_core::store::describe_io(e)
    ))
}
