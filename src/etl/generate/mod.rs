//! `reviews-api generate`: a synthetic dataset in exactly the original CSV format.
//!
//! Why it is shaped this way:
//! - Every random draw comes from a splitmix64 written here and keyed by (seed, stream, id), so
//!   the files depend on the arguments alone: no crate upgrade can change them, and a product's
//!   shape does not depend on how much text the products before it happened to draw.
//! - One pass over the products writes all four files at once; the only state that grows is four
//!   id counters, so memory stays constant however many products are asked for.
//! - Rows are formatted into one reused byte buffer per file (no String per row, integers with
//!   itoa): the full-size run writes ~31 million rows and formatting is most of its cost.
//! - Each file is written as `NAME.partial` and renamed only once all four are complete, so an
//!   interrupted run never leaves a complete-looking but truncated file behind.

mod files;
mod rng;
#[cfg(test)]
mod tests;
mod words;

use crate::etl::csv;
use crate::etl::dataset::CHARACTERISTIC_NAMES;
use anyhow::Context;
use files::Files;
use indicatif::{ProgressBar, ProgressStyle};
use rng::Rng;
use std::path::PathBuf;
use std::time::Instant;
use words::{EMAIL_DOMAINS, EMAIL_LOCALS, NAMES, RESPONSES, SENTENCES, SUMMARIES, SUMMARY_TAILS};

#[derive(Debug, Clone, clap::Args)]
pub struct GenerateArgs {
    /// Number of products (the real dataset has 1000011)
    #[arg(long, default_value_t = 1_000_011)]
    pub products: u32,
    /// Seed of the pseudo-random generator: the same seed writes the same files
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Directory to write reviews.csv, reviews_photos.csv, characteristics.csv and
    /// characteristic_reviews.csv into (created if missing)
    #[arg(long, required_unless_present = "list_files")]
    pub out: Option<PathBuf>,
    /// Print the names of the files a dataset is made of, one a line, and write nothing (for
    /// scripts: bench/run asks the binary rather than keeping a copy of the names)
    #[arg(long)]
    pub list_files: bool,
}

// Independent streams, so that e.g. changing how text is drawn cannot move a product's shape.
const STREAM_PRODUCT: u64 = 1;
const STREAM_REVIEW: u64 = 2;
const STREAM_DETAIL: u64 = 3;
const STREAM_FORCED_HEAVY: u64 = 4;
const STREAM_SWAP: u64 = 16;

/// A heavy product (500..=2000 reviews) per this many per million products. The real dataset
/// has a few hundred among a million.
const HEAVY_PER_MILLION: u64 = 300;
/// From this many products on, one product is always heavy, so small datasets exercise the tail.
const FORCED_HEAVY_FROM: u32 = 1000;
/// Products that are neither heavy nor ordinary: 11..=40 reviews, per million.
const MIDDLE_PER_MILLION: u64 = 30_000;
/// Weights of 0..=10 reviews for an ordinary product. With the middle and heavy tails the mean
/// is ~5.78 reviews per product, as in the real 5,774,952 / 1,000,011.
const ORDINARY_REVIEW_WEIGHTS: [u32; 11] = [5, 8, 10, 11, 12, 11, 10, 9, 8, 6, 5];
/// Weights of 1..=6 characteristics: mean 3.35 (real: 3,347,679 / 1,000,011).
const CHARACTERISTIC_COUNT_WEIGHTS: [u32; 6] = [100, 200, 265, 210, 135, 90];
/// Weights of 0..=5 photos: mean 0.475 (real: 2,742,540 / 5,774,952).
const PHOTO_COUNT_WEIGHTS: [u32; 6] = [754, 123, 62, 30, 19, 12];
/// Weights of ratings 1..=5: skewed to 4 and 5 like most review sites.
const RATING_WEIGHTS: [u32; 5] = [6, 7, 15, 30, 42];
/// Weights of values 1..=5 for fit-like characteristics, where 3 means "as expected".
const FIT_VALUE_WEIGHTS: [u32; 5] = [5, 15, 50, 20, 10];

/// 2020-01-01T00:00:00.000Z and 2022-01-01T00:00:00.000Z in epoch milliseconds.
const DATE_FROM_MS: u64 = 1_577_836_800_000;
const DATE_TO_MS: u64 = 1_640_995_200_000;

/// Products between progress-bar updates: updating per product would cost more than the rows.
const PROGRESS_EVERY: u32 = 4096;

const MAX_SUMMARY_CHARS: usize = 60;
const MAX_BODY_CHARS: usize = 1000;
const MAX_NAME_CHARS: usize = 60;

pub fn run(args: &GenerateArgs) -> anyhow::Result<()> {
    let Some(out) = &args.out else {
        for file in crate::etl::dataset::CsvFile::ALL {
            println!("{}", file.name());
        }
        return Ok(());
    };
    let started = Instant::now();
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    let mut files = Files::create(out, args.seed)?;
    let result = generate(args, &mut files);
    let counts = match result.and_then(|()| files.finish()) {
        Ok(counts) => counts,
        Err(e) => {
            // Partial files are named as such, but leaving gigabytes of them behind helps no one.
            files.remove_partials();
            return Err(e);
        }
    };
    let counts: Vec<String> = counts
        .iter()
        .map(|(file, rows)| format!("{} {rows} rows", file.name()))
        .collect();
    println!(
        "generated {} products into {}: {} in {:.1}s",
        args.products,
        out.display(),
        counts.join(", "),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

fn generate(args: &GenerateArgs, files: &mut Files) -> anyhow::Result<()> {
    let seed = args.seed;
    let products = u64::from(args.products);
    let forced_heavy = (args.products >= FORCED_HEAVY_FROM)
        .then(|| 1 + Rng::keyed(seed, STREAM_FORCED_HEAVY, 0).below(products));

    let progress = ProgressBar::new(products);
    progress.set_style(
        ProgressStyle::with_template(
            "{elapsed_precise} {wide_bar} {pos}/{len} products, {msg}, eta {eta}",
        )?
        .progress_chars("=> "),
    );
    let started = Instant::now();

    let pools = Pools::new();
    let mut text = Scratch::default();
    let mut ids = Ids::default();
    // (characteristic id, index into CHARACTERISTIC_NAMES) of the current product.
    let mut characteristics = [(0u64, 0usize); 6];

    for product_id in 1..=products {
        let mut rng = Rng::keyed(seed, STREAM_PRODUCT, product_id);
        let reviews = review_count(&mut rng, forced_heavy == Some(product_id));
        let count = 1 + rng.weighted(&CHARACTERISTIC_COUNT_WEIGHTS);
        let mut names = [0, 1, 2, 3, 4, 5];
        for i in 0..count {
            let j = i + rng.below((names.len() - i) as u64) as usize;
            names.swap(i, j);
        }
        let names = &mut names[..count];
        names.sort_unstable();
        for (slot, &name) in characteristics.iter_mut().zip(names.iter()) {
            ids.characteristic += 1;
            *slot = (ids.characteristic, name);
            let buf = &mut files.characteristics.buf;
            put_u64(buf, ids.characteristic);
            buf.push(b',');
            put_u64(buf, product_id);
            buf.push(b',');
            put_quoted(buf, CHARACTERISTIC_NAMES[name]);
            buf.push(b'\n');
            files.characteristics.end_row()?;
        }
        let characteristics = &characteristics[..count];

        for _ in 0..reviews {
            ids.review += 1;
            let mut rng = Rng::keyed(seed, STREAM_REVIEW, ids.review);
            let rating = 1 + rng.weighted(&RATING_WEIGHTS) as u64;
            write_review(
                &mut files.reviews.buf,
                &mut rng,
                &pools,
                &mut text,
                ids.review,
                product_id,
                rating,
            );
            files.reviews.end_row()?;

            let mut rng = Rng::keyed(seed, STREAM_DETAIL, ids.review);
            for _ in 0..rng.weighted(&PHOTO_COUNT_WEIGHTS) {
                ids.photo += 1;
                let buf = &mut files.photos.buf;
                put_u64(buf, ids.photo);
                buf.push(b',');
                put_u64(buf, ids.review);
                buf.push(b',');
                put_photo_url(buf, &mut rng);
                buf.push(b'\n');
                files.photos.end_row()?;
            }
            for &(characteristic_id, name) in characteristics {
                ids.value += 1;
                let value = characteristic_value(&mut rng, name, rating);
                let buf = &mut files.values.buf;
                put_u64(buf, ids.value);
                buf.push(b',');
                put_u64(buf, characteristic_id);
                buf.push(b',');
                put_u64(buf, ids.review);
                buf.push(b',');
                put_u64(buf, value);
                buf.push(b'\n');
                files.values.end_row()?;
            }
        }

        if product_id % u64::from(PROGRESS_EVERY) == 0 || product_id == products {
            progress.set_position(product_id);
            let rows = files.rows();
            let per_sec = rows as f64 / started.elapsed().as_secs_f64().max(1e-3);
            progress.set_message(format!("{rows} rows, {per_sec:.0} rows/s"));
        }
    }
    progress.finish_and_clear();
    Ok(())
}

#[derive(Default)]
struct Ids {
    review: u64,
    photo: u64,
    characteristic: u64,
    value: u64,
}

fn review_count(rng: &mut Rng, forced_heavy: bool) -> u64 {
    let draw = rng.below(1_000_000);
    if forced_heavy || draw < HEAVY_PER_MILLION {
        rng.range(500, 2000)
    } else if draw < HEAVY_PER_MILLION + MIDDLE_PER_MILLION {
        rng.range(11, 40)
    } else {
        rng.weighted(&ORDINARY_REVIEW_WEIGHTS) as u64
    }
}

fn characteristic_value(rng: &mut Rng, name: usize, rating: u64) -> u64 {
    match CHARACTERISTIC_NAMES[name] {
        // How good it is follows the rating; how it fits does not.
        "Comfort" | "Quality" => match rng.below(10) {
            0 | 1 => rating.saturating_sub(1).max(1),
            2 | 3 => (rating + 1).min(5),
            _ => rating,
        },
        _ => 1 + rng.weighted(&FIT_VALUE_WEIGHTS) as u64,
    }
}

/// Reused text buffers, so a review costs no allocation.
#[derive(Default)]
struct Scratch {
    summary: String,
    body: String,
    name: String,
    email: String,
}

fn write_review(
    buf: &mut Vec<u8>,
    rng: &mut Rng,
    pools: &Pools,
    text: &mut Scratch,
    id: u64,
    product_id: u64,
    rating: u64,
) {
    put_u64(buf, id);
    buf.push(b',');
    put_u64(buf, product_id);
    buf.push(b',');
    put_u64(buf, rating);
    buf.push(b',');
    put_u64(buf, DATE_FROM_MS + rng.below(DATE_TO_MS - DATE_FROM_MS));
    buf.push(b',');

    summary(rng, pools, &mut text.summary);
    put_quoted(buf, &text.summary);
    buf.push(b',');
    let target = body_target_chars(rng);
    body(rng, pools, target, &mut text.body);
    put_quoted(buf, &text.body);
    buf.push(b',');

    let recommend_per_cent = match rating {
        4 | 5 => 90,
        3 => 55,
        _ => 25,
    };
    put_bool(buf, rng.below(100) < recommend_per_cent);
    buf.push(b',');
    put_bool(buf, rng.below(1000) < 15);
    buf.push(b',');

    reviewer_name(rng, pools, &mut text.name);
    put_quoted(buf, &text.name);
    buf.push(b',');
    reviewer_email(rng, &mut text.email);
    put_quoted(buf, &text.email);
    buf.push(b',');

    let response = rng.below(1_000_000);
    if response < 500 {
        // The four-letter text, which the loader must keep apart from the bare token.
        put_quoted(buf, "null");
    } else if response < 200_000 {
        put_quoted(buf, rng.pick(RESPONSES));
    } else {
        buf.extend_from_slice(b"null");
    }
    buf.push(b',');

    // Geometric: most reviews get a few votes, a handful get dozens.
    let mut helpfulness = 0;
    while helpfulness < 100 && rng.below(100) < 80 {
        helpfulness += 1;
    }
    put_u64(buf, helpfulness);
    buf.push(b'\n');
}

fn summary(rng: &mut Rng, pools: &Pools, out: &mut String) {
    out.clear();
    let (head, head_chars) = pools.summaries.pick(rng);
    out.push_str(head);
    if rng.below(10) == 0 {
        let (tail, tail_chars) = pools.summary_tails.pick(rng);
        if head_chars + tail_chars <= MAX_SUMMARY_CHARS {
            out.push_str(tail);
        }
    }
}

/// Mostly a short paragraph, sometimes a word or two, sometimes an essay up to the limit.
fn body_target_chars(rng: &mut Rng) -> usize {
    let draw = rng.below(1000);
    let (lo, hi) = if draw < 20 {
        (1, 49)
    } else if draw < 850 {
        (50, 250)
    } else if draw < 970 {
        (251, 600)
    } else {
        (601, MAX_BODY_CHARS as u64)
    };
    rng.range(lo, hi) as usize
}

/// Whole sentences while they fit in `target` characters; the first one is cut if it alone
/// is longer, so the body is never empty and never longer than `target`.
fn body(rng: &mut Rng, pools: &Pools, target: usize, out: &mut String) {
    out.clear();
    let mut chars = 0;
    loop {
        let separator = if chars == 0 {
            ""
        } else {
            // Double spaces as in the real data; now and then a line or paragraph break.
            match rng.below(1000) {
                0..=699 => "  ",
                700..=984 => " ",
                985..=994 => "\n",
                _ => "\n\n",
            }
        };
        let (sentence, sentence_chars) = pools.sentences.pick(rng);
        let added = separator.len() + sentence_chars;
        if chars > 0 && chars + added > target {
            break;
        }
        out.push_str(separator);
        out.push_str(sentence);
        chars += added;
        if chars >= target {
            break;
        }
    }
    if chars > target {
        let cut = out.char_indices().nth(target).map_or(out.len(), |(i, _)| i);
        out.truncate(cut);
        let kept = out.trim_end().len();
        out.truncate(kept);
    }
}

fn reviewer_name(rng: &mut Rng, pools: &Pools, out: &mut String) {
    out.clear();
    let (name, chars) = pools.names.pick(rng);
    out.push_str(name);
    if rng.below(10) < 6 && chars + 4 <= MAX_NAME_CHARS {
        push_u64(out, rng.range(1, 9999));
    }
}

fn reviewer_email(rng: &mut Rng, out: &mut String) {
    out.clear();
    if rng.below(100) < 15 {
        // The placeholder the real dataset uses for most reviews.
        out.push_str("first.last@gmail.com");
        return;
    }
    out.push_str(rng.pick(EMAIL_LOCALS));
    match rng.below(3) {
        0 => {}
        1 => out.push('.'),
        _ => out.push('_'),
    }
    push_u64(out, rng.range(1, 99_999));
    out.push('@');
    out.push_str(rng.pick(EMAIL_DOMAINS));
}

/// `https://images.unsplash.com/photo-<13 digits>-<12 hex>?ixlib=rb-1.2.1&...`, like the real
/// ones: 86 to 95 characters.
fn put_photo_url(buf: &mut Vec<u8>, rng: &mut Rng) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    buf.extend_from_slice(b"\"https://images.unsplash.com/photo-");
    put_u64(buf, rng.range(1_400_000_000_000, 1_620_000_000_000));
    buf.push(b'-');
    let mut bits = rng.next();
    for _ in 0..12 {
        buf.push(HEX[(bits & 15) as usize]);
        bits >>= 4;
    }
    buf.extend_from_slice(b"?ixlib=rb-1.2.1&");
    let params: &[u8] = match rng.below(20) {
        0..=11 => b"w=975&q=80",
        12..=14 => b"w=1000&q=80",
        _ => b"fit=crop&w=668&q=80",
    };
    buf.extend_from_slice(params);
    buf.push(b'"');
}

// ---------------------------------------------------------------------------------------------
// Formatting

fn put_u64(buf: &mut Vec<u8>, n: u64) {
    buf.extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
}

fn push_u64(out: &mut String, n: u64) {
    out.push_str(itoa::Buffer::new().format(n));
}

fn put_bool(buf: &mut Vec<u8>, b: bool) {
    buf.extend_from_slice(if b { b"true" } else { b"false" });
}

/// A CSV field, always quoted (see csv::quote).
fn put_quoted(buf: &mut Vec<u8>, s: &str) {
    csv::quote(s.as_bytes(), buf);
}

// ---------------------------------------------------------------------------------------------
// Text

/// A word list with each entry's length in characters, counted once rather than per review.
struct Pool {
    items: Vec<(&'static str, usize)>,
}

impl Pool {
    fn new(items: &[&'static str]) -> Self {
        Pool {
            items: items.iter().map(|s| (*s, s.chars().count())).collect(),
        }
    }

    fn pick(&self, rng: &mut Rng) -> (&'static str, usize) {
        self.items[rng.below(self.items.len() as u64) as usize]
    }
}

struct Pools {
    summaries: Pool,
    summary_tails: Pool,
    sentences: Pool,
    names: Pool,
}

impl Pools {
    fn new() -> Self {
        Pools {
            summaries: Pool::new(SUMMARIES),
            summary_tails: Pool::new(SUMMARY_TAILS),
            sentences: Pool::new(SENTENCES),
            names: Pool::new(NAMES),
        }
    }
}
