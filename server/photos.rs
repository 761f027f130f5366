//! Photos attached to residents' issue reports: check an upload, and turn it
//! into the JPEG that is stored and served.
//!
//! An upload is trusted for nothing: its format is read from its bytes (JPEG,
//! PNG or WebP only), its size is checked before its pixels are allocated
//! (decompression bombs), and it is re-encoded from pixels alone, so no Exif,
//! GPS position, XMP, ICC profile or text chunk reaches storage. The Exif
//! orientation is applied first, so the picture still stands upright.
//!
//! This module does no I/O and knows nothing of issues or the database. It is
//! CPU-bound and memory-hungry: a quarter second and ~50 MiB for a 12 MP phone
//! photo, at worst about a second (a 13 MP square) and ~160 MiB (40 MP, which
//! a PNG of under 1 MiB can claim). Callers run it off the actix workers
//! (`web::block`) and should let only a couple run at once.

use std::io::Cursor;
use std::panic::{catch_unwind, AssertUnwindSafe};

use image::codecs::jpeg::JpegEncoder;
use image::imageops::{self, FilterType};
use image::metadata::Orientation;
use image::{DynamicImage, ImageDecoder, ImageFormat, ImageReader, Limits, RgbImage};

use crate::error::ApiError;

/// Largest upload accepted, in bytes (the HTTP layer enforces it too).
pub const MAX_UPLOAD_BYTES: usize = 10 * 1024 * 1024;
/// Longest side of a stored photo, in pixels.
pub const MAX_SIDE: u32 = 2048;
/// Most pixels an upload may decode to: 40 MP is above every phone's default
/// photo and keeps a decoded RGB image near 120 MB.
pub const MAX_PIXELS: u64 = 40_000_000;
/// Widest or tallest upload that is decoded at all.
const MAX_DIMENSION: u32 = 12_000;
/// Most bytes a decoder may allocate for pixels: a 40 MP RGBA image (160 MB)
/// fits; a 16-bit one must be smaller.
const MAX_DECODE_BYTES: u64 = 160 * 1024 * 1024;
const JPEG_QUALITY: u8 = 82;

/// A photo ready to store: a JPEG made from pixels alone.
#[derive(Clone, PartialEq, Eq)]
pub struct Processed {
    /// The JPEG bytes.
    pub data: Vec<u8>,
    pub width: u32,
    pub height: u32,
    /// Always `"image/jpeg"`.
    pub content_type: &'static str,
}

impl std::fmt::Debug for Processed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Processed")
            .field("bytes", &self.data.len())
            .field("width", &self.width)
            .field("height", &self.height)
            .field("content_type", &self.content_type)
            .finish()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PhotoError {
    /// Not a JPEG, PNG or WebP; cut off or damaged; or too many pixels. The
    /// message is meant for the resident.
    #[error("{0}")]
    Invalid(String),
    /// More than `MAX_UPLOAD_BYTES`.
    #[error("photo larger than {MAX_UPLOAD_BYTES} bytes")]
    TooLarge,
}

impl From<PhotoError> for ApiError {
    fn from(e: PhotoError) -> Self {
        match e {
            PhotoError::Invalid(message) => ApiError::Invalid { code: "invalid_image", message, field: Some("photo") },
            PhotoError::TooLarge => ApiError::PayloadTooLarge(MAX_UPLOAD_BYTES),
        }
    }
}

/// Checks an uploaded photo and re-encodes it as a JPEG of at most
/// `MAX_SIDE` pixels on the long side, turned upright, without metadata.
pub fn reencode(bytes: &[u8]) -> Result<Processed, PhotoError> {
    if bytes.len() > MAX_UPLOAD_BYTES {
        return Err(PhotoError::TooLarge);
    }
    let format = match image::guess_format(bytes) {
        Ok(f @ (ImageFormat::Jpeg | ImageFormat::Png | ImageFormat::WebP)) => f,
        _ => return Err(invalid("The photo must be a JPEG, PNG or WebP image.")),
    };
    if format == ImageFormat::Jpeg && !jpeg_is_complete(bytes) {
        return Err(damaged());
    }
    // The decoders are fuzzed and limits keep them from allocating wildly; a
    // panic on some hostile file must still be a refused photo, not a dead worker.
    catch_unwind(AssertUnwindSafe(|| decode_and_encode(bytes, format))).unwrap_or_else(|_| {
        tracing::warn!(?format, bytes = bytes.len(), "image decoder panicked on an upload");
        Err(damaged())
    })
}

fn decode_and_encode(bytes: &[u8], format: ImageFormat) -> Result<Processed, PhotoError> {
    let mut limits = Limits::default();
    limits.max_image_width = Some(MAX_DIMENSION);
    limits.max_image_height = Some(MAX_DIMENSION);
    limits.max_alloc = Some(MAX_DECODE_BYTES);
    let mut reader = ImageReader::with_format(Cursor::new(bytes), format);
    reader.limits(limits);
    let mut decoder = reader.into_decoder().map_err(decode_error)?;

    let (width, height) = decoder.dimensions();
    if u64::from(width) * u64::from(height) > MAX_PIXELS || decoder.total_bytes() > MAX_DECODE_BYTES {
        return Err(too_many_pixels());
    }
    // A damaged Exif block is no reason to refuse the picture itself.
    let orientation = decoder.orientation().unwrap_or(Orientation::NoTransforms);
    let pixels = DynamicImage::from_decoder(decoder).map_err(decode_error)?;

    // Flatten before scaling: filtering straight (non-premultiplied) alpha
    // would bleed the colour of invisible pixels into the edges.
    let rgb = flatten_on_white(pixels);
    let mut picture = DynamicImage::ImageRgb8(shrink(rgb));
    // Turning after shrinking moves fewer pixels; the long side stays the long side.
    picture.apply_orientation(orientation);
    let picture = picture.into_rgb8();

    let mut data = Vec::with_capacity(picture.as_raw().len() / 8);
    JpegEncoder::new_with_quality(&mut data, JPEG_QUALITY)
        .encode_image(&picture)
        .map_err(|e| PhotoError::Invalid(format!("The photo could not be converted: {e}")))?;
    Ok(Processed { data, width: picture.width(), height: picture.height(), content_type: "image/jpeg" })
}

/// RGB pixels; transparent parts become white (as on a white page).
fn flatten_on_white(pixels: DynamicImage) -> RgbImage {
    if !pixels.color().has_alpha() {
        return pixels.into_rgb8();
    }
    let rgba = pixels.into_rgba8();
    let (w, h) = rgba.dimensions();
    let pixel_count = w as usize * h as usize;
    let mut buf = rgba.into_raw();
    // In place, so a 40 MP upload does not hold a second 120 MB buffer: pixel
    // i's RGB goes to 3i, never past its own RGBA at 4i, which is read first.
    for i in 0..pixel_count {
        let a = u32::from(buf[4 * i + 3]);
        for c in 0..3 {
            buf[3 * i + c] = ((u32::from(buf[4 * i + c]) * a + 255 * (255 - a) + 127) / 255) as u8;
        }
    }
    buf.truncate(3 * pixel_count);
    RgbImage::from_raw(w, h, buf).expect("three bytes per pixel")
}

/// Scales down (never up) so the long side is at most `MAX_SIDE`.
fn shrink(rgb: RgbImage) -> RgbImage {
    let (w, h) = rgb.dimensions();
    let long = w.max(h);
    if long <= MAX_SIDE {
        return rgb;
    }
    let scale =
        |side: u32| ((u64::from(side) * u64::from(MAX_SIDE) + u64::from(long) / 2) / u64::from(long)).max(1) as u32;
    let (new_w, new_h) = (scale(w), scale(h));
    // Box averaging (`thumbnail`) is about 5× faster than a convolution filter
    // and needs no intermediate image (`resize` keeps one of 16 bytes per pixel,
    // ~100 MB for a 12 MP photo). Once each output pixel covers about two source
    // pixels or more it filters aliasing as well; closer to the target size it
    // would not, and the picture is small enough for a proper filter.
    if long >= MAX_SIDE * 7 / 4 {
        imageops::thumbnail(&rgb, new_w, new_h)
    } else {
        imageops::resize(&rgb, new_w, new_h, FilterType::CatmullRom)
    }
}

/// Whether a JPEG reaches its end-of-image marker. The JPEG decoder `image`
/// drives is lenient and paints a cut-off file's missing part grey; an upload
/// cut off in transit must be refused instead. Bytes after EOI (phones append
/// motion-photo video there) are fine.
fn jpeg_is_complete(bytes: &[u8]) -> bool {
    const SOS: u8 = 0xda;
    const EOI: [u8; 2] = [0xff, 0xd9];
    // Walk the header segments by their lengths (an Exif thumbnail inside
    // APP1 has an EOI of its own), up to the first scan.
    let mut i = 2;
    loop {
        while bytes.get(i) == Some(&0xff) && bytes.get(i + 1) == Some(&0xff) {
            i += 1; // fill bytes
        }
        let (Some(&0xff), Some(&marker)) = (bytes.get(i), bytes.get(i + 1)) else { return false };
        let Some(len) = bytes.get(i + 2..i + 4).map(|l| usize::from(u16::from_be_bytes([l[0], l[1]]))) else {
            return false;
        };
        i += 2 + len;
        if marker == SOS {
            break;
        }
    }
    // Entropy-coded data never holds FF D9 (an FF in it is followed by 00 or RSTn).
    bytes.get(i..).is_some_and(|rest| rest.windows(2).any(|w| w == EOI))
}

fn decode_error(e: image::ImageError) -> PhotoError {
    use image::error::{ImageError, LimitErrorKind};
    match e {
        ImageError::Limits(l)
            if matches!(l.kind(), LimitErrorKind::DimensionError | LimitErrorKind::InsufficientMemory) =>
        {
            too_many_pixels()
        }
        ImageError::Unsupported(_) => invalid("This kind of JPEG, PNG or WebP image is not supported."),
        other => {
            tracing::debug!(error = %other, "photo upload did not decode");
            damaged()
        }
    }
}

fn invalid(message: &str) -> PhotoError {
    PhotoError::Invalid(message.to_owned())
}

fn damaged() -> PhotoError {
    invalid("The photo is damaged or incomplete.")
}

fn too_many_pixels() -> PhotoError {
    PhotoError::Invalid(format!(
        "The photo has too many pixels (at most {} megapixels, {MAX_DIMENSION} pixels per side).",
        MAX_PIXELS / 1_000_000
    ))
}

/// The same builders the HTTP tests use (one file, two users).
#[cfg(test)]
#[path = "../tests/api/photos_fixtures.rs"]
mod fixtures;

#[cfg(test)]
mod tests {
    use super::*;

    use super::fixtures::*;
    use image::{ImageEncoder, RgbaImage};

    fn decoded(p: &Processed) -> RgbImage {
        assert_eq!(p.content_type, "image/jpeg");
        assert_eq!(image::guess_format(&p.data).unwrap(), ImageFormat::Jpeg);
        let img = image::load_from_memory_with_format(&p.data, ImageFormat::Jpeg).unwrap().into_rgb8();
        assert_eq!(img.dimensions(), (p.width, p.height));
        img
    }

    fn assert_invalid(bytes: &[u8]) -> String {
        match reencode(bytes) {
            Err(PhotoError::Invalid(message)) => message,
            other => panic!("expected Invalid, got {other:?}"),
        }
    }

    fn is_red(p: image::Rgb<u8>) -> bool {
        p[0] > 150 && p[2] < 100
    }

    fn is_blue(p: image::Rgb<u8>) -> bool {
        p[2] > 150 && p[0] < 100
    }

    #[test]
    fn jpeg_exif_and_gps_are_gone() {
        let input = jpeg_with_gps(64, 48);
        assert!(has_exif_or_gps(&input), "fixture must carry Exif/GPS");
        assert_eq!(metadata_blocks(&input), ["APP1"]);

        let out = reencode(&input).unwrap();
        assert_eq!((out.width, out.height), (64, 48));
        assert!(!has_exif_or_gps(&out.data), "metadata left: {:?}", metadata_blocks(&out.data));
        let img = decoded(&out);
        assert!(is_red(*img.get_pixel(5, 24)) && is_blue(*img.get_pixel(58, 24)));
    }

    #[test]
    fn png_exif_and_text_chunks_are_gone() {
        let input = png_with_exif(30, 20);
        assert_eq!(metadata_blocks(&input), ["eXIf", "tEXt"]);
        assert!(image::load_from_memory(&input).is_ok(), "fixture must be a valid PNG");

        let out = reencode(&input).unwrap();
        assert_eq!((out.width, out.height), (30, 20));
        assert!(!has_exif_or_gps(&out.data), "metadata left: {:?}", metadata_blocks(&out.data));
        decoded(&out);
    }

    #[test]
    fn webp_with_exif_is_accepted_and_exif_gone() {
        let input = webp_with_exif(40, 30);
        assert_eq!(metadata_blocks(&input), ["EXIF"]);
        assert!(has_exif_or_gps(&input));

        let out = reencode(&input).unwrap();
        assert_eq!((out.width, out.height), (40, 30));
        assert!(!has_exif_or_gps(&out.data), "metadata left: {:?}", metadata_blocks(&out.data));
        let img = decoded(&out);
        assert!(is_red(*img.get_pixel(3, 15)) && is_blue(*img.get_pixel(36, 15)));
    }

    #[test]
    fn orientation_is_applied() {
        // Stored 80 wide, 40 high, left half red; orientation 6 = turn 90° clockwise
        // to show, so the red half ends up on top of a 40 × 80 picture.
        let out = reencode(&jpeg_with_orientation(80, 40, 6)).unwrap();
        assert_eq!((out.width, out.height), (40, 80));
        assert!(!has_exif_or_gps(&out.data));
        let img = decoded(&out);
        assert!(is_red(*img.get_pixel(20, 5)), "top should be red: {:?}", img.get_pixel(20, 5));
        assert!(is_blue(*img.get_pixel(20, 75)), "bottom should be blue: {:?}", img.get_pixel(20, 75));

        // Orientation 8 turns the other way: red at the bottom.
        let img = decoded(&reencode(&jpeg_with_orientation(80, 40, 8)).unwrap());
        assert!(is_blue(*img.get_pixel(20, 5)) && is_red(*img.get_pixel(20, 75)));

        // Orientation 1 leaves it alone.
        let out = reencode(&jpeg_with_orientation(80, 40, 1)).unwrap();
        assert_eq!((out.width, out.height), (80, 40));
    }

    #[test]
    fn large_photos_are_scaled_to_2048_on_the_long_side() {
        // Box-averaged (4000 ≥ 1.75 × 2048) ...
        let out = reencode(&jpeg(4000, 1000)).unwrap();
        assert_eq!((out.width, out.height), (2048, 512));
        let img = decoded(&out);
        assert!(is_red(*img.get_pixel(100, 256)) && is_blue(*img.get_pixel(1948, 256)));

        // ... and filtered with CatmullRom.
        let out = reencode(&jpeg(3000, 1500)).unwrap();
        assert_eq!((out.width, out.height), (2048, 1024));
        let img = decoded(&out);
        assert!(is_red(*img.get_pixel(100, 512)) && is_blue(*img.get_pixel(1948, 512)));

        let out = reencode(&png(1000, 3000)).unwrap();
        assert_eq!((out.width, out.height), (683, 2048));

        // Small ones are never scaled up.
        let out = reencode(&png(2048, 10)).unwrap();
        assert_eq!((out.width, out.height), (2048, 10));
    }

    #[test]
    fn transparency_becomes_white() {
        let img = decoded(&reencode(&png_transparent(16, 16)).unwrap());
        assert!(img.pixels().all(|p| p.0.iter().all(|&c| c > 245)), "{:?}", img.get_pixel(8, 8));

        // Opaque red left, half-transparent blue right: red stays, blue pales on white.
        let rgba = RgbaImage::from_fn(32, 16, |x, _| {
            if x < 16 {
                image::Rgba([220, 20, 20, 255])
            } else {
                image::Rgba([0, 0, 255, 128])
            }
        });
        let mut png = Vec::new();
        image::codecs::png::PngEncoder::new(&mut png)
            .write_image(rgba.as_raw(), 32, 16, image::ExtendedColorType::Rgba8)
            .unwrap();
        let img = decoded(&reencode(&png).unwrap());
        assert!(is_red(*img.get_pixel(4, 8)), "{:?}", img.get_pixel(4, 8));
        let [r, g, b] = img.get_pixel(28, 8).0;
        assert!((117..=137).contains(&r) && (117..=137).contains(&g) && b > 240, "{:?}", [r, g, b]);
    }

    #[test]
    fn cut_off_uploads_are_refused() {
        let jpeg = jpeg_with_gps(200, 150);
        assert_invalid(&jpeg[..jpeg.len() / 2]);
        assert_invalid(&jpeg[..jpeg.len() - 2]); // only the EOI marker missing
        assert_invalid(&jpeg[..300]); // inside the Exif segment
        assert_invalid(&jpeg[..4]);

        let png = png_with_exif(200, 150);
        assert_invalid(&png[..png.len() / 2]);
        assert_invalid(&png[..png.len() - 12]); // no IEND
        assert_invalid(&png[..40]);

        let webp = webp_with_exif(200, 150);
        assert_invalid(&webp[..webp.len() / 2]);
        assert_invalid(&webp[..20]);
    }

    #[test]
    fn other_formats_and_garbage_are_refused() {
        let random: Vec<u8> = (0..4096u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
        assert_eq!(assert_invalid(&random), "The photo must be a JPEG, PNG or WebP image.");
        assert_invalid(b"GIF89a\x01\x00\x01\x00\x80\x00\x00\xff\xff\xff\x00\x00\x00!\xf9\x04\x01\x00\x00\x00\x00,\x00\x00\x00\x00\x01\x00\x01\x00\x00\x02\x02D\x01\x00;");
        assert_invalid(
            br#"<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"><rect width="10" height="10"/></svg>"#,
        );
        assert_invalid(b"hello, this is not a photo");
        assert_invalid(b"");
        // A BMP is an image, but not one residents' phones send.
        assert_invalid(b"BM\x3a\x00\x00\x00\x00\x00\x00\x00\x36\x00\x00\x00\x28\x00\x00\x00");

        // A JPEG header with garbage where the picture should be.
        let mut broken = jpeg(64, 64);
        let sos = broken.windows(2).position(|w| w == [0xff, 0xda]).unwrap();
        broken.truncate(sos);
        broken.extend_from_slice(&[0xff, 0xda, 0x00, 0x02, 0x12, 0x34, 0xff, 0xd9]);
        assert_invalid(&broken);
    }

    #[test]
    fn decompression_bombs_are_refused_without_allocating() {
        let started = std::time::Instant::now();
        let bomb = png_bomb();
        assert!(bomb.len() < 100);
        assert!(assert_invalid(&bomb).contains("too many pixels"));
        // Within the per-side limit but 144 MP.
        assert!(assert_invalid(&png_header_only(12_000, 12_000)).contains("too many pixels"));
        // Over the per-side limit, few pixels.
        assert!(assert_invalid(&png_header_only(20_000, 10)).contains("too many pixels"));
        // Allocating (let alone filling) any of these would take far longer.
        assert!(started.elapsed() < std::time::Duration::from_millis(500), "{:?}", started.elapsed());
    }

    #[test]
    fn uploads_over_10_mib_are_too_large() {
        let mut big = jpeg(8, 8);
        big.resize(MAX_UPLOAD_BYTES + 1, 0);
        assert_eq!(reencode(&big), Err(PhotoError::TooLarge));
        let api: ApiError = PhotoError::TooLarge.into();
        assert_eq!(api.code(), "payload_too_large");
    }

    #[test]
    fn invalid_maps_to_invalid_image_on_the_photo_field() {
        let api: ApiError = PhotoError::Invalid(assert_invalid(b"nope")).into();
        match api {
            ApiError::Invalid { code: "invalid_image", field: Some("photo"), .. } => {}
            other => panic!("{other:?}"),
        }
    }
}
