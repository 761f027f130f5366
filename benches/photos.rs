//! What re-encoding a resident's photo costs (`server/photos.rs`): time per
//! photo and the resident-set growth of the largest inputs an upload may
//! send. A benchmark, not a test (Linux; release build):
//!
//! ```text
//! cargo bench --bench photos
//! ```
//!
//! Inputs: a phone's 12 MP JPEG (box-averaged down), a 7 MP one and a 13 MP
//! square (the largest that take the CatmullRom path), the 40 MP limit as a
//! JPEG, and 40 MP of RGBA in a few hundred KiB of PNG — the most memory an
//! upload can ask for. Every JPEG carries an EXIF orientation, as phones'
//! photos do. Each line also gives the ratio to merely decoding the same
//! upload, measured in the same run.

use std::time::Instant;

use herold::photos::{reencode, MAX_UPLOAD_BYTES};
use image::codecs::jpeg::JpegEncoder;
use image::{ImageEncoder, RgbImage, RgbaImage};

#[path = "../tests/api/photos_fixtures.rs"]
mod fixtures;

fn main() {
    for (w, h, noise) in [(4000, 3000, 31), (3000, 2250, 31), (3583, 3583, 31), (7300, 5475, 3)] {
        let textured = RgbImage::from_fn(w, h, |x, y| {
            let n = ((x.wrapping_mul(2_654_435_761) ^ y.wrapping_mul(40_503)) >> 7) as u8 & noise;
            image::Rgb([(x / 16) as u8 ^ n, (y / 12) as u8, ((x + y) / 28) as u8 ^ n.rotate_left(3) & noise])
        });
        let mut input = Vec::new();
        JpegEncoder::new_with_quality(&mut input, 92).encode_image(&textured).expect("encode");
        drop(textured);
        let input = with_orientation_exif(input);
        assert!(input.len() <= MAX_UPLOAD_BYTES, "{} bytes", input.len());
        measure(&format!("{w}x{h} JPEG"), &input);
    }
    let (w, h) = (7300, 5475);
    let gradient = RgbaImage::from_fn(w, h, |x, y| image::Rgba([(x / 29) as u8, (y / 22) as u8, 90, (x / 8) as u8]));
    let mut input = Vec::new();
    image::codecs::png::PngEncoder::new_with_quality(
        &mut input,
        image::codecs::png::CompressionType::Fast,
        Default::default(),
    )
    .write_image(gradient.as_raw(), w, h, image::ExtendedColorType::Rgba8)
    .expect("encode");
    drop(gradient);
    measure(&format!("{w}x{h} RGBA PNG"), &input);
}

fn measure(what: &str, input: &[u8]) {
    let baseline = reset_peak_rss_kib();
    let started = Instant::now();
    let out = reencode(input).expect("a valid photo");
    let first = started.elapsed();
    let peak = peak_rss_kib().zip(baseline).map(|(p, b)| p.saturating_sub(b) / 1024);
    let runs = 3;
    let started = Instant::now();
    for _ in 0..runs {
        std::hint::black_box(reencode(input).expect("a valid photo"));
    }
    let per_photo = started.elapsed() / runs;
    // Baseline in the same run: only decoding the upload (no limits,
    // orientation, scaling or encoding) — what any image handling costs.
    let started = Instant::now();
    for _ in 0..runs {
        std::hint::black_box(image::load_from_memory(input).expect("decodes"));
    }
    let decode = started.elapsed() / runs;
    println!(
        "{what} ({} KiB) -> {}x{} JPEG ({} KiB): {per_photo:?} per photo (first {first:?}), \
         {:.2}x a plain decode ({decode:?}), peak +{} MiB RSS",
        input.len() / 1024,
        out.width,
        out.height,
        out.data.len() / 1024,
        per_photo.as_secs_f64() / decode.as_secs_f64(),
        peak.map_or("?".to_owned(), |p| p.to_string()),
    );
}

/// Resets the kernel's resident-set high-water mark; returns the current RSS.
fn reset_peak_rss_kib() -> Option<u64> {
    std::fs::write("/proc/self/clear_refs", "5").ok()?;
    status_kib("VmRSS:")
}

fn peak_rss_kib() -> Option<u64> {
    status_kib("VmHWM:")
}

fn status_kib(key: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with(key))?;
    line[key.len()..].trim().trim_end_matches("kB").trim().parse().ok()
}

/// The fixture's EXIF segment (orientation 6) on a bigger picture.
fn with_orientation_exif(jpeg_bytes: Vec<u8>) -> Vec<u8> {
    let exif = fixtures::jpeg_with_orientation(8, 8, 6);
    let app1_len = usize::from(u16::from_be_bytes([exif[4], exif[5]]));
    let mut out = exif[..4 + app1_len].to_vec();
    out.extend_from_slice(&jpeg_bytes[2..]);
    out
}
