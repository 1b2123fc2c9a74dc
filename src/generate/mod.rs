//! Synthetic CRM data with realistic behaviour.
//!
//! [`generate`] writes one file per canonical table (`<table>.csv` or
//! `<table>.parquet`, columns exactly as [`crate::store::schema::TABLES`]) plus
//! the side file `promotions_truth.csv` with the true uplift of every
//! promotion. The same options give the same bytes.
//!
//! # The model
//! - **Customers** sign up over the history window (`years` years ending on
//!   `end_date`), more of them later (linear growth); ids increase with
//!   signup time. Personal data is US-style (names, `+1` E.164 phones,
//!   emails, Zipf-distributed cities). 65 % give marketing consent.
//! - **Purchases** follow BG/NBD: 22 % of customers never buy (prospects); a
//!   buyer makes a first purchase soon after signup, then repeats at rate
//!   λ ~ Gamma(shape 0.85, rate 9.5 per day) and drops out after each purchase with
//!   probability p ~ Beta(1.0, 14). A quarter of the buyers are
//!   *replenishers*: they rebuy one consumable category (cycle 30, 60 or 90
//!   days) with Gamma(6) inter-purchase times around that cycle, and every one
//!   of their orders contains that category.
//! - **Spend** is Gamma-Gamma: per customer ν ~ Gamma(shape 3.5, rate 25), each
//!   order's amount ~ Gamma(shape 6, rate ν) (mean $60).
//! - **Order statuses**: 2 % cancelled, returned with a per-customer
//!   propensity ~ Beta(2, 48) (mean 4 %), the rest completed.
//! - **Order lines**: 1–4 lines (mean ≈ 2). Exact rule:
//!   `Σ quantity × unit_price = amount + discount` to the cent for every order.
//! - **Promotions**: [`PROMOTION_COUNT`] promotions, each aimed at a segment
//!   (evaluated on the customer's natural order history at the start), reaching
//!   a share of the eligible consenting customers; [`CONTROL_SHARE`] of the
//!   exposures are a random control group (`is_control = true`). Each exposed
//!   customer responds with probability `base` (control) or `base + uplift`
//!   (treated): a completed order within [`RESPONSE_WINDOW_DAYS`] days after the
//!   exposure, carrying the `promotion_id` when treated.
//! - **Interactions**: ≈ 5 per customer (views, clicks, carts, email/app
//!   opens, store visits, shares, reviews 1–5, consults, complaints about
//!   returned orders, NPS surveys 0–10 correlated with orders, returns and
//!   complaints, referrals whose `ref` is the referred customer's id).
//!
//! # Scale and layout
//! Per customer on average: 10.1 orders, 20 order lines, 5.1 interactions,
//! 2.9 promotion exposures (measured at 100,000 customers), so 1,000,000
//! customers give about 10 M orders and 20 M lines. Customers are generated in
//! fixed chunks of 10,000 with one ChaCha8 stream per chunk (seeded from the
//! seed and the chunk number), on up to four threads, and written in chunk
//! order: every file is ordered by `customer_id` (orders then by time, and
//! `order_id` increases in that order), except that a `referral` interaction
//! is written next to the referred customer.
//!
//! # True uplift
//! The measured uplift of a promotion is the difference in the share of
//! customers with at least one order with `status <> 'cancelled'` and
//! `exposed_at < order_ts <= exposed_at + 14 days`, treated minus control.
//! Ordinary (non-promotion) orders also fall in that window, so the measured
//! uplift is smaller than the designed one: a treated customer who would have
//! ordered anyway adds nothing. The generator counts, per promotion, the share
//! `quiet` of exposures with no other non-cancelled order in the window and
//! writes `true_uplift = designed_uplift × quiet` with the expected treated and
//! control rates to `promotions_truth.csv` (see [`TRUTH_FILE`], [`read_truth`]).

mod vocab;

use std::fmt::Write as _;
use std::fs::File;
use std::io::{BufWriter, Write as _};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;
use std::sync::mpsc::sync_channel;

use chrono::{Months, NaiveDate};
use datafusion::arrow::array::{
    ArrayRef, BooleanArray, Date32Array, Decimal128Array, Float64Array, Int32Array, Int64Array,
    StringArray, StringBuilder, TimestampMicrosecondArray,
};
use datafusion::arrow::csv::WriterBuilder as CsvWriterBuilder;
use datafusion::arrow::error::ArrowError;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::parquet::arrow::ArrowWriter;
use datafusion::parquet::basic::{Compression, ZstdLevel};
use datafusion::parquet::errors::ParquetError;
use datafusion::parquet::file::properties::{EnabledStatistics, WriterProperties};
use rand::distr::Distribution;
use rand::distr::weighted::WeightedIndex;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Beta, Exp, Gamma, Normal, Poisson};

use crate::store::schema::{
    CUSTOMERS, INTERACTIONS, ORDER_ITEMS, ORDERS, PROMOTION_EXPOSURES, PROMOTIONS, TableDef,
};
use vocab::{CATEGORIES, CITIES, MARKETPLACES, STORES_PER_CITY};

/// Number of promotions generated.
pub const PROMOTION_COUNT: usize = 50;
/// Share of the exposures held out as the control group.
pub const CONTROL_SHARE: f64 = 0.10;
/// Days after the exposure in which an order counts as a response.
pub const RESPONSE_WINDOW_DAYS: i64 = 14;
/// Name of the side file with the true uplift of every promotion.
pub const TRUTH_FILE: &str = "promotions_truth.csv";
/// Customers generated per chunk (fixed: the output does not depend on the
/// number of threads).
const CHUNK_CUSTOMERS: u64 = 10_000;
/// Largest accepted `--customers`.
pub const MAX_CUSTOMERS: u64 = 100_000_000;

const DAY: i64 = 86_400;
const MICROS: i64 = 1_000_000;

/// Output file format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum OutputFormat {
    /// CSV with a header row (RFC 3339 `Z` timestamps, 2-decimal money).
    #[default]
    Csv,
    /// Parquet with the exact Arrow schema of the table, zstd-compressed.
    Parquet,
}

impl OutputFormat {
    /// File extension without the dot.
    pub fn extension(self) -> &'static str {
        match self {
            OutputFormat::Csv => "csv",
            OutputFormat::Parquet => "parquet",
        }
    }
}

impl FromStr for OutputFormat {
    type Err = GenerateError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "csv" => Ok(OutputFormat::Csv),
            "parquet" => Ok(OutputFormat::Parquet),
            _ => Err(GenerateError::BadOption(format!(
                "--format must be csv or parquet, got '{s}'"
            ))),
        }
    }
}

/// The default last day of the history: 2026-06-30.
pub fn default_end_date() -> NaiveDate {
    NaiveDate::from_ymd_opt(2026, 6, 30).unwrap_or_default()
}

/// What to generate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GenerateOptions {
    /// Number of customers (≥ 1).
    pub customers: u64,
    /// Random seed; the same options give the same bytes.
    pub seed: u64,
    /// Output directory (created if missing; existing files are overwritten).
    pub out: PathBuf,
    /// CSV or Parquet.
    pub format: OutputFormat,
    /// Last day of the history (inclusive, UTC). Default 2026-06-30.
    pub end_date: NaiveDate,
    /// Length of the history in years (1–20). Default 3.
    pub years: u32,
}

impl GenerateOptions {
    /// Options with the defaults: CSV, end date 2026-06-30, 3 years.
    pub fn new(customers: u64, seed: u64, out: impl Into<PathBuf>) -> Self {
        GenerateOptions {
            customers,
            seed,
            out: out.into(),
            format: OutputFormat::Csv,
            end_date: default_end_date(),
            years: 3,
        }
    }
}

/// What was written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GenerateSummary {
    /// One entry per canonical table, in load order: (table, rows, file, bytes).
    pub tables: Vec<(String, u64, PathBuf, u64)>,
    /// The side file with the true uplift per promotion ([`TRUTH_FILE`]).
    pub truth_file: PathBuf,
}

/// Errors of [`generate`].
#[derive(Debug, thiserror::Error)]
pub enum GenerateError {
    /// An option is out of range.
    #[error("generate: {0}")]
    BadOption(String),
    /// A file or directory could not be created or written.
    #[error("generate: cannot write {path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// Arrow (CSV writer or batch construction) failed.
    #[error("generate: cannot write {path}: {source}")]
    Arrow {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: ArrowError,
    },
    /// The Parquet writer failed.
    #[error("generate: cannot write {path}: {source}")]
    Parquet {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: ParquetError,
    },
    /// A generator thread stopped unexpectedly (a bug).
    #[error("generate: internal error: {0}")]
    Internal(String),
}

// ---------------------------------------------------------------------------
// Model parameters
// ---------------------------------------------------------------------------

/// Share of customers who never buy on their own.
const PROSPECT_SHARE: f64 = 0.22;
/// BG/NBD purchase rate λ (per day) ~ Gamma(R_SHAPE, rate ALPHA).
const R_SHAPE: f64 = 0.85;
const ALPHA: f64 = 9.5;
/// BG/NBD drop-out probability p ~ Beta(A, B).
const BETA_A: f64 = 1.0;
const BETA_B: f64 = 14.0;
/// Gamma-Gamma spend: ν ~ Gamma(Q, rate GG_GAMMA), amount ~ Gamma(P, rate ν).
const GG_P: f64 = 6.0;
const GG_Q: f64 = 3.5;
const GG_GAMMA: f64 = 25.0;
/// Share of buyers who are replenishers of one consumable category.
const REPLENISHER_SHARE: f64 = 0.25;
const CANCEL_SHARE: f64 = 0.02;
const CONSENT_SHARE: f64 = 0.65;

/// A promotion as planned (before any customer is generated).
#[derive(Debug, Clone, PartialEq)]
pub struct PromotionPlan {
    /// `promotion_id` (1-based, in start order).
    pub id: i64,
    /// Display name.
    pub name: String,
    /// Kind (coupon, discount, ...).
    pub kind: &'static str,
    /// Channel it is sent through.
    pub channel: &'static str,
    /// Start, seconds since the epoch (UTC).
    pub start: i64,
    /// End, seconds since the epoch (UTC).
    pub end: i64,
    /// Target segment: all, active, lapsed, new, high_value, prospects.
    pub segment: &'static str,
    /// Probability that an eligible consenting customer is exposed.
    pub reach: f64,
    /// Response probability of the control group.
    pub base_rate: f64,
    /// Designed uplift: treated respond with probability `base_rate + uplift`.
    pub uplift: f64,
    /// Cost per treated exposure, in cents (the promotion's `cost` is this
    /// times the number of treated exposures).
    pub cost_per_contact_cents: i64,
}

/// The promotions for a seed and history window, in id order. Deterministic:
/// the designed base rate and uplift of every promotion can be read here.
pub fn plan_promotions(seed: u64, window_start: i64, window_end: i64) -> Vec<PromotionPlan> {
    let mut rng = ChaCha8Rng::seed_from_u64(mix(seed, 0x9e37_79b9_7f4a_7c15));
    let seg_w = weights(vocab::TARGET_SEGMENTS.iter().map(|(_, w)| *w));
    let first = window_start + 30 * DAY;
    let span = (window_end - 45 * DAY - first).max(DAY) as f64;
    // A few promotions with no effect at all, the others 1–12 points.
    let mut zero_effect = [false; PROMOTION_COUNT];
    for _ in 0..4 {
        let k = rng.random_range(0..PROMOTION_COUNT);
        zero_effect[k] = true;
    }
    (0..PROMOTION_COUNT)
        .map(|i| {
            let start_f =
                first as f64 + (i as f64 + rng.random::<f64>()) / PROMOTION_COUNT as f64 * span;
            let start = (start_f as i64).div_euclid(3600) * 3600 + 8 * 3600;
            let start = start.div_euclid(DAY) * DAY + 8 * 3600 + rng.random_range(0..10) * 3600;
            let duration = rng.random_range(7..=30) * DAY;
            let kind = vocab::PROMOTION_KINDS[rng.random_range(0..vocab::PROMOTION_KINDS.len())];
            let channel =
                vocab::PROMOTION_CHANNELS[rng.random_range(0..vocab::PROMOTION_CHANNELS.len())];
            let segment = vocab::TARGET_SEGMENTS[pick(&seg_w, &mut rng)].0;
            let reach = match segment {
                "all" => rng.random_range(0.15..0.35),
                "active" => rng.random_range(0.40..0.80),
                "lapsed" => rng.random_range(0.50..0.90),
                "new" => rng.random_range(0.60..0.95),
                "high_value" => rng.random_range(0.50..0.90),
                _ => rng.random_range(0.30..0.60),
            };
            let base_rate = round4(rng.random_range(0.02..0.08));
            let uplift = if zero_effect[i] {
                0.0
            } else {
                round4(rng.random_range(0.01..0.12))
            };
            let cost_per_contact_cents = rng.random_range(10..=200);
            let date = chrono::DateTime::from_timestamp(start, 0).unwrap_or_default();
            let season = match chrono::Datelike::month(&date) {
                3..=5 => "Spring",
                6..=8 => "Summer",
                9..=11 => "Autumn",
                _ => "Winter",
            };
            let name = format!(
                "{season} {} {} #{}",
                chrono::Datelike::year(&date),
                kind.replace('_', " "),
                i + 1
            );
            PromotionPlan {
                id: i as i64 + 1,
                name,
                kind,
                channel,
                start,
                end: start + duration,
                segment,
                reach,
                base_rate,
                uplift,
                cost_per_contact_cents,
            }
        })
        .collect()
}

fn round4(x: f64) -> f64 {
    (x * 10_000.0).round() / 10_000.0
}

/// The history window (first second, last second) for an end date and length.
pub fn history_window(end_date: NaiveDate, years: u32) -> Result<(i64, i64), GenerateError> {
    let bad = || {
        GenerateError::BadOption(format!(
            "--end-date {end_date} with {years} years is out of range"
        ))
    };
    let end = end_date
        .and_hms_opt(23, 59, 59)
        .ok_or_else(bad)?
        .and_utc()
        .timestamp();
    let start_date = end_date
        .checked_sub_months(Months::new(12 * years))
        .and_then(|d| d.succ_opt())
        .ok_or_else(bad)?;
    let start = start_date
        .and_hms_opt(0, 0, 0)
        .ok_or_else(bad)?
        .and_utc()
        .timestamp();
    Ok((start, end))
}

// ---------------------------------------------------------------------------
// Random helpers (never panic: a bad parameter falls back to the mean)
// ---------------------------------------------------------------------------

fn mix(seed: u64, k: u64) -> u64 {
    // splitmix64 of seed ^ k
    let mut z = seed ^ k.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

fn unit(h: u64) -> f64 {
    (h >> 11) as f64 / (1u64 << 53) as f64
}

fn gamma<R: Rng>(rng: &mut R, shape: f64, scale: f64) -> f64 {
    Gamma::new(shape, scale)
        .map(|g| g.sample(rng))
        .unwrap_or(shape * scale)
}

fn beta<R: Rng>(rng: &mut R, a: f64, b: f64) -> f64 {
    Beta::new(a, b)
        .map(|d| d.sample(rng))
        .unwrap_or(a / (a + b))
}

fn exp_mean<R: Rng>(rng: &mut R, mean: f64) -> f64 {
    Exp::new(1.0 / mean).map(|d| d.sample(rng)).unwrap_or(mean)
}

fn normal<R: Rng>(rng: &mut R, mean: f64, sd: f64) -> f64 {
    Normal::new(mean, sd).map(|d| d.sample(rng)).unwrap_or(mean)
}

fn poisson<R: Rng>(rng: &mut R, mean: f64) -> u64 {
    Poisson::new(mean.max(1e-9))
        .map(|d| d.sample(rng) as u64)
        .unwrap_or(mean as u64)
}

fn chance<R: Rng>(rng: &mut R, p: f64) -> bool {
    rng.random::<f64>() < p
}

fn weights(w: impl Iterator<Item = f64>) -> Option<WeightedIndex<f64>> {
    WeightedIndex::new(w.collect::<Vec<_>>()).ok()
}

fn pick<R: Rng>(w: &Option<WeightedIndex<f64>>, rng: &mut R) -> usize {
    w.as_ref().map(|w| w.sample(rng)).unwrap_or(0)
}

/// Static distributions shared by all chunks.
struct Model {
    seed: u64,
    customers: u64,
    start: i64,
    end: i64,
    promos: Vec<PromotionPlan>,
    city: Option<WeightedIndex<f64>>,
    domain: Option<WeightedIndex<f64>>,
    category: Option<WeightedIndex<f64>>,
    signup_channel: Option<WeightedIndex<f64>>,
    order_channel: Option<WeightedIndex<f64>>,
    hour: Option<WeightedIndex<f64>>,
    lines: Option<WeightedIndex<f64>>,
    kinds: Option<WeightedIndex<f64>>,
    consumables: Vec<usize>,
}

/// Interaction kinds drawn for ordinary touchpoints, with weights (referrals
/// and complaints about returned orders are added separately).
const TOUCH_KINDS: &[(&str, f64)] = &[
    ("view", 0.31),
    ("click", 0.14),
    ("add_to_cart", 0.10),
    ("email_open", 0.12),
    ("app_open", 0.08),
    ("visit", 0.05),
    ("share", 0.03),
    ("review", 0.05),
    ("consult", 0.04),
    ("complaint", 0.01),
    ("survey", 0.07),
];

impl Model {
    fn new(opts: &GenerateOptions) -> Result<Model, GenerateError> {
        let (start, end) = history_window(opts.end_date, opts.years)?;
        Ok(Model {
            seed: opts.seed,
            customers: opts.customers,
            start,
            end,
            promos: plan_promotions(opts.seed, start, end),
            city: weights((0..CITIES.len()).map(|i| 1.0 / (i as f64 + 1.5))),
            domain: weights(vocab::EMAIL_DOMAINS.iter().map(|(_, w)| *w)),
            category: weights(CATEGORIES.iter().map(|c| c.weight)),
            signup_channel: weights(vocab::SIGNUP_CHANNELS.iter().map(|(_, w)| *w)),
            order_channel: weights(vocab::ORDER_CHANNELS.iter().map(|(_, w)| *w)),
            hour: weights(vocab::HOUR_WEIGHTS.iter().copied()),
            lines: weights([0.42, 0.30, 0.16, 0.12].into_iter()),
            kinds: weights(TOUCH_KINDS.iter().map(|(_, w)| *w)),
            consumables: (0..CATEGORIES.len())
                .filter(|&i| CATEGORIES[i].cycle_days.is_some())
                .collect(),
        })
    }

    /// Signup time of customer `id`: a deterministic function of the id, so
    /// any chunk can compute any customer's signup (ids increase with time).
    fn signup(&self, id: i64) -> i64 {
        const GROWTH: f64 = 2.0;
        let jitter = unit(mix(self.seed ^ 0x51_6e75_7073, id as u64));
        let u = ((id - 1) as f64 + jitter) / self.customers as f64;
        let x = ((1.0 + 2.0 * GROWTH * u * (1.0 + GROWTH / 2.0)).sqrt() - 1.0) / GROWTH;
        let span = (self.end - self.start) as f64;
        (self.start + (x.clamp(0.0, 1.0) * span) as i64).min(self.end)
    }

    /// Move a time to a realistic hour of the same day (not before `floor`).
    fn diurnal<R: Rng>(&self, rng: &mut R, t: i64, floor: i64) -> i64 {
        let day = t.div_euclid(DAY) * DAY;
        let ts = day + pick(&self.hour, rng) as i64 * 3600 + rng.random_range(0..3600);
        if ts < floor {
            (floor + rng.random_range(60..3600)).min(self.end)
        } else {
            ts.min(self.end)
        }
    }
}

// ---------------------------------------------------------------------------
// Rows of one chunk
// ---------------------------------------------------------------------------

struct CustomerRow {
    id: i64,
    name: String,
    phone: Option<String>,
    email: Option<String>,
    gender: &'static str,
    birth_date: Option<i32>,
    city: Option<&'static str>,
    signup: i64,
    signup_channel: &'static str,
    tier: &'static str,
    consent: bool,
    updated: i64,
}

#[derive(Clone, Copy)]
enum StoreRef {
    Store(u16),
    Market(usize),
}

struct OrderRow {
    customer_id: i64,
    ts: i64,
    channel: &'static str,
    store: Option<StoreRef>,
    amount: i64,
    discount: i64,
    promotion_id: Option<i64>,
    status: &'static str,
}

struct ItemRow {
    /// Index of the order within the chunk.
    order: u32,
    line_no: i32,
    category: usize,
    sku: u16,
    quantity: i32,
    unit_price: i64,
}

enum Ref {
    None,
    Sku(usize, u16),
    Order(u32),
    Customer(i64),
    Store(u16),
    Promotion(i64),
    Text(&'static str),
    Month(i64),
}

struct InteractionRow {
    customer_id: i64,
    ts: i64,
    channel: &'static str,
    kind: &'static str,
    reference: Ref,
    value: Option<f64>,
}

struct ExposureRow {
    promotion_id: i64,
    customer_id: i64,
    ts: i64,
    channel: &'static str,
    is_control: bool,
}

/// Per-promotion sums used for the truth file (summed in chunk order, so the
/// result is deterministic).
#[derive(Debug, Clone, Copy, Default)]
struct PromoStats {
    treated: u64,
    control: u64,
    /// Σ over treated exposures of 1{no other non-cancelled order in the window}.
    quiet_treated: f64,
    quiet_control: f64,
    /// Same with "completed" instead of "non-cancelled".
    quiet_treated_completed: f64,
    quiet_control_completed: f64,
}

struct Chunk {
    customers: Vec<CustomerRow>,
    orders: Vec<OrderRow>,
    items: Vec<ItemRow>,
    interactions: Vec<InteractionRow>,
    exposures: Vec<ExposureRow>,
    stats: Vec<PromoStats>,
}

/// An order before ids are assigned.
struct Draft {
    ts: i64,
    status: &'static str,
    /// Promotion index whose response this order is (treated or control).
    response_of: Option<usize>,
    /// Promotion id written on the order (treated responses only).
    promotion_id: Option<i64>,
    channel: &'static str,
    store: Option<StoreRef>,
    amount: i64,
    discount: i64,
    staple: Option<usize>,
}

struct Exposure {
    promo: usize,
    ts: i64,
    control: bool,
}

/// Per-customer behaviour.
struct Behaviour {
    nu: f64,
    return_prop: f64,
    staple: Option<usize>,
    favourite: usize,
    channel: &'static str,
    home_store: u16,
}

fn generate_chunk(m: &Model, chunk: u64) -> Chunk {
    let mut rng = ChaCha8Rng::seed_from_u64(mix(m.seed, chunk + 1));
    let first = chunk * CHUNK_CUSTOMERS + 1;
    let last = ((chunk + 1) * CHUNK_CUSTOMERS).min(m.customers);
    let mut out = Chunk {
        customers: Vec::with_capacity((last + 1 - first) as usize),
        orders: Vec::new(),
        items: Vec::new(),
        interactions: Vec::new(),
        exposures: Vec::new(),
        stats: vec![PromoStats::default(); m.promos.len()],
    };
    for id in first..=last {
        customer(m, &mut rng, id as i64, &mut out);
    }
    out
}

fn customer(m: &Model, rng: &mut ChaCha8Rng, id: i64, out: &mut Chunk) {
    let signup = m.signup(id);
    // --- personal data
    let g = rng.random::<f64>();
    let gender = if g < 0.51 {
        "F"
    } else if g < 0.96 {
        "M"
    } else if g < 0.975 {
        "X"
    } else {
        "U"
    };
    let female = gender == "F" || (gender != "M" && chance(rng, 0.5));
    let first_names = if female {
        vocab::FEMALE_NAMES
    } else {
        vocab::MALE_NAMES
    };
    let first = first_names[rng.random_range(0..first_names.len())];
    let last = vocab::LAST_NAMES[rng.random_range(0..vocab::LAST_NAMES.len())];
    let city_idx = pick(&m.city, rng);
    let city = if chance(rng, 0.02) {
        None
    } else {
        Some(CITIES[city_idx].0)
    };
    let phone = (!chance(rng, 0.07)).then(|| {
        let area = if city.is_some() {
            CITIES[city_idx].1
        } else {
            CITIES[rng.random_range(0..CITIES.len())].1
        };
        format!(
            "+1{area}{}{:04}",
            rng.random_range(200..1000),
            rng.random_range(0..10_000)
        )
    });
    let email = (!chance(rng, 0.04)).then(|| {
        let f = first.to_ascii_lowercase();
        let l: String = last
            .chars()
            .filter(|c| c.is_ascii_alphabetic())
            .collect::<String>()
            .to_ascii_lowercase();
        let user = match rng.random_range(0..5) {
            0 => format!("{f}.{l}"),
            1 => format!("{f}.{l}{}", rng.random_range(1..100)),
            2 => format!("{}{l}{}", &f[..1], rng.random_range(1..1000)),
            3 => format!("{f}{l}"),
            _ => format!("{l}.{f}{}", rng.random_range(60..100)),
        };
        format!("{user}@{}", vocab::EMAIL_DOMAINS[pick(&m.domain, rng)].0)
    });
    let birth_date = (!chance(rng, 0.12)).then(|| {
        let age_days = ((18.0 + gamma(rng, 2.5, 7.0)).min(90.0) * 365.25) as i64;
        ((signup / DAY) - age_days - rng.random_range(0..365)) as i32
    });
    let signup_channel = vocab::SIGNUP_CHANNELS[pick(&m.signup_channel, rng)].0;
    let consent = chance(rng, CONSENT_SHARE);

    // --- behaviour
    let prospect = chance(rng, PROSPECT_SHARE);
    let lambda = gamma(rng, R_SHAPE, 1.0 / ALPHA);
    let p_drop = beta(rng, BETA_A, BETA_B);
    let nu = gamma(rng, GG_Q, 1.0 / GG_GAMMA);
    let staple = (!prospect && chance(rng, REPLENISHER_SHARE))
        .then(|| m.consumables[rng.random_range(0..m.consumables.len())]);
    let b = Behaviour {
        nu,
        return_prop: beta(rng, 2.0, 48.0),
        staple,
        favourite: pick(&m.category, rng),
        channel: match signup_channel {
            "web" | "app" | "store" | "marketplace" => signup_channel,
            _ => {
                if chance(rng, 0.6) {
                    "app"
                } else {
                    "web"
                }
            }
        },
        home_store: city_idx as u16 * STORES_PER_CITY + rng.random_range(0..STORES_PER_CITY) + 1,
    };
    let satisfaction = normal(rng, 0.0, 1.0);

    // --- natural purchases (BG/NBD-like)
    let mut drafts: Vec<Draft> = Vec::new();
    if !prospect {
        let delay = if chance(rng, 0.55) {
            rng.random_range(0.0..0.12)
        } else {
            exp_mean(rng, 25.0)
        };
        let mut t = signup as f64 + delay * DAY as f64;
        loop {
            if t > m.end as f64 {
                break;
            }
            let ts = m.diurnal(rng, t as i64, signup);
            drafts.push(natural_order(m, rng, &b, ts));
            if chance(rng, p_drop) {
                break;
            }
            let gap_days = match staple.and_then(|c| CATEGORIES[c].cycle_days) {
                Some(cycle) => gamma(rng, 6.0, f64::from(cycle) / 6.0),
                None => exp_mean(rng, 1.0 / lambda.max(1e-6)),
            };
            t += gap_days.max(0.01) * DAY as f64;
        }
    }
    drafts.sort_by_key(|d| d.ts);
    let natural = drafts.len();

    // --- promotions (eligibility on the natural history only, so that
    // assignment and responses of different promotions are independent)
    let mut exposures: Vec<Exposure> = Vec::new();
    for (pi, p) in m.promos.iter().enumerate() {
        if !consent || signup >= p.start {
            continue;
        }
        // Natural drafts are sorted by time: the history before the start.
        let k = drafts[..natural].partition_point(|d| d.ts < p.start);
        let mut before = drafts[..k].iter().filter(|d| d.status != "cancelled");
        let last_ts = before.clone().next_back().map(|d| d.ts);
        let count = before.by_ref().take(2).count();
        let eligible = match p.segment {
            "all" => true,
            "active" => last_ts.is_some_and(|t| t >= p.start - 180 * DAY),
            "lapsed" => last_ts.is_some_and(|t| t < p.start - 180 * DAY),
            "new" => signup >= p.start - 90 * DAY,
            "high_value" => count >= 2 && GG_P / b.nu.max(1e-9) >= 75.0,
            _ => count == 0,
        };
        if !eligible || !chance(rng, p.reach) {
            continue;
        }
        let control = chance(rng, CONTROL_SHARE);
        let ts = (p.start + rng.random_range(0..2 * DAY)).min(m.end);
        let q = p.base_rate + if control { 0.0 } else { p.uplift };
        if chance(rng, q) {
            let rts = ts + rng.random_range(600..RESPONSE_WINDOW_DAYS * DAY - 600);
            if rts <= m.end {
                let mut d = natural_order(m, rng, &b, rts);
                d.status = "completed";
                d.response_of = Some(pi);
                d.staple = None;
                d.channel = if chance(rng, 0.55) { "app" } else { "web" };
                d.store = None;
                if !control {
                    d.promotion_id = Some(p.id);
                    d.discount = promo_discount(rng, p.kind, d.amount);
                }
                drafts.push(d);
            }
        }
        exposures.push(Exposure {
            promo: pi,
            ts,
            control,
        });
    }
    drafts.sort_by_key(|d| d.ts);

    // --- truth: for every exposure, was there another order in its window?
    for e in &exposures {
        let hi = e.ts + RESPONSE_WINDOW_DAYS * DAY;
        let others = drafts
            .iter()
            .filter(|d| d.ts > e.ts && d.ts <= hi && d.response_of != Some(e.promo));
        let mut any = false;
        let mut any_completed = false;
        for d in others {
            any |= d.status != "cancelled";
            any_completed |= d.status == "completed";
        }
        let s = &mut out.stats[e.promo];
        let quiet = if any { 0.0 } else { 1.0 };
        let quiet_c = if any_completed { 0.0 } else { 1.0 };
        if e.control {
            s.control += 1;
            s.quiet_control += quiet;
            s.quiet_control_completed += quiet_c;
        } else {
            s.treated += 1;
            s.quiet_treated += quiet;
            s.quiet_treated_completed += quiet_c;
        }
        let p = &m.promos[e.promo];
        out.exposures.push(ExposureRow {
            promotion_id: p.id,
            customer_id: id,
            ts: e.ts,
            channel: p.channel,
            is_control: e.control,
        });
    }

    // --- orders and lines
    let mut completed = 0u32;
    let mut returned: Vec<(u32, i64)> = Vec::new();
    let mut spend_last_year = 0i64;
    for d in &drafts {
        let oi = out.orders.len() as u32;
        lines(m, rng, &b, d, oi, &mut out.items);
        match d.status {
            "completed" => completed += 1,
            "returned" => returned.push((oi, d.ts)),
            _ => {}
        }
        if d.status == "completed" && d.ts > m.end - 365 * DAY {
            spend_last_year += d.amount;
        }
        out.orders.push(OrderRow {
            customer_id: id,
            ts: d.ts,
            channel: d.channel,
            store: d.store,
            amount: d.amount,
            discount: d.discount,
            promotion_id: d.promotion_id,
            status: d.status,
        });
    }

    // --- interactions
    let mut touches: Vec<InteractionRow> = Vec::new();
    let mut complaints = 0u32;
    for &(oi, ts) in &returned {
        if chance(rng, 0.35) {
            complaints += 1;
            touches.push(InteractionRow {
                customer_id: id,
                ts: (ts + rng.random_range(2 * DAY..20 * DAY)).min(m.end),
                channel: if chance(rng, 0.6) {
                    "call_center"
                } else {
                    "email"
                },
                kind: "complaint",
                reference: Ref::Order(oi),
                value: None,
            });
        }
    }
    let mood = 6.3 + 0.22 * f64::from(completed.min(15))
        - if returned.is_empty() { 0.0 } else { 1.8 }
        - if complaints > 0 { 1.2 } else { 0.0 }
        + 1.1 * satisfaction;
    let n_touch = poisson(rng, 1.5 + 0.40 * drafts.len().min(40) as f64);
    let span = (m.end - signup).max(1);
    let treated: Vec<(i64, i64)> = exposures
        .iter()
        .filter(|e| !e.control)
        .map(|e| (m.promos[e.promo].id, e.ts))
        .collect();
    for _ in 0..n_touch {
        let kind = TOUCH_KINDS[pick(&m.kinds, rng)].0;
        let near_order = matches!(kind, "view" | "add_to_cart" | "review")
            && !drafts.is_empty()
            && chance(rng, 0.6);
        let mut ts = if near_order {
            let d = &drafts[rng.random_range(0..drafts.len())];
            if kind == "review" {
                (d.ts + rng.random_range(DAY..30 * DAY)).min(m.end)
            } else {
                (d.ts - rng.random_range(0..3 * DAY)).max(signup)
            }
        } else {
            let t = signup + rng.random_range(0..span);
            m.diurnal(rng, t, signup)
        };
        let cat = if chance(rng, 0.5) {
            b.favourite
        } else {
            pick(&m.category, rng)
        };
        let sku = Ref::Sku(cat, sku_number(rng, cat));
        let web_app = if chance(rng, 0.5) { "web" } else { "app" };
        let (channel, reference, value) = match kind {
            "view" | "add_to_cart" | "share" => {
                let ch = if kind == "share" { "social" } else { web_app };
                let v = (kind == "add_to_cart").then(|| {
                    let price = gamma(rng, 2.0, 15.0 * CATEGORIES[cat].price_level);
                    (price.max(1.0) * 100.0).round() / 100.0
                });
                (ch, sku, v)
            }
            "click" => match treated.len() {
                0 => (web_app, sku, None),
                n => {
                    // A click on a promotion the customer was sent, soon after.
                    let (promotion, at) = treated[rng.random_range(0..n)];
                    ts = (at + rng.random_range(600..3 * DAY)).min(m.end);
                    ("email", Ref::Promotion(promotion), None)
                }
            },
            "email_open" => ("email", Ref::Month(ts), None),
            "app_open" => ("app", Ref::None, None),
            "visit" => ("store", Ref::Store(b.home_store), None),
            "review" => {
                let stars = ((mood / 2.0) + normal(rng, 0.0, 0.8))
                    .round()
                    .clamp(1.0, 5.0);
                (web_app, sku, Some(stars))
            }
            "consult" => {
                let topic = vocab::CONSULT_TOPICS[rng.random_range(0..vocab::CONSULT_TOPICS.len())];
                let ch = ["call_center", "web", "store"][rng.random_range(0..3)];
                (ch, Ref::Text(topic), None)
            }
            "complaint" => ("call_center", Ref::Text("service"), None),
            _ => {
                let score = (mood + normal(rng, 0.0, 1.3)).round().clamp(0.0, 10.0);
                (
                    if chance(rng, 0.7) { "email" } else { "app" },
                    Ref::Text("nps"),
                    Some(score),
                )
            }
        };
        touches.push(InteractionRow {
            customer_id: id,
            ts,
            channel,
            kind,
            reference,
            value,
        });
    }
    touches.sort_by_key(|t| t.ts);
    out.interactions.extend(touches);
    // The referrer (an earlier customer) records the referral.
    if signup_channel == "referral" && id > 1 {
        let referrer = rng.random_range(1..id);
        let lo = m.signup(referrer).max(signup - 7 * DAY);
        let ts = if lo < signup {
            rng.random_range(lo..signup)
        } else {
            signup
        };
        out.interactions.push(InteractionRow {
            customer_id: referrer,
            ts,
            channel: if chance(rng, 0.5) { "social" } else { "app" },
            kind: "referral",
            reference: Ref::Customer(id),
            value: None,
        });
    }

    // --- customer row
    let last_activity = drafts.last().map(|d| d.ts).unwrap_or(signup).max(signup);
    let updated = (last_activity + rng.random_range(0..30 * DAY))
        .min(m.end)
        .max(signup);
    let tier = match spend_last_year {
        s if s >= 150_000 => "platinum",
        s if s >= 60_000 => "gold",
        s if s >= 20_000 => "silver",
        _ => "regular",
    };
    out.customers.push(CustomerRow {
        id,
        name: format!("{first} {last}"),
        phone,
        email,
        gender,
        birth_date,
        city,
        signup,
        signup_channel,
        tier,
        consent,
        updated,
    });
}

fn sku_number<R: Rng>(rng: &mut R, cat: usize) -> u16 {
    let u = rng.random::<f64>();
    1 + (u * u * f64::from(CATEGORIES[cat].skus)) as u16
}

fn natural_order<R: Rng>(m: &Model, rng: &mut R, b: &Behaviour, ts: i64) -> Draft {
    let amount_f = gamma(rng, GG_P, 1.0 / b.nu.max(1e-6)).clamp(1.0, 50_000.0);
    let amount = (amount_f * 100.0).round() as i64;
    let discount = if chance(rng, 0.22) {
        let d = rng.random_range(0.05..0.30);
        (amount as f64 * d / (1.0 - d)).round() as i64
    } else {
        0
    };
    let channel = if chance(rng, 0.7) {
        b.channel
    } else {
        vocab::ORDER_CHANNELS[pick(&m.order_channel, rng)].0
    };
    let store = match channel {
        "store" => Some(StoreRef::Store(if chance(rng, 0.85) {
            b.home_store
        } else {
            rng.random_range(1..=CITIES.len() as u16 * STORES_PER_CITY)
        })),
        "marketplace" => Some(StoreRef::Market(rng.random_range(0..MARKETPLACES.len()))),
        _ => None,
    };
    let u = rng.random::<f64>();
    let status = if u < CANCEL_SHARE {
        "cancelled"
    } else if u < CANCEL_SHARE + b.return_prop {
        "returned"
    } else {
        "completed"
    };
    Draft {
        ts,
        status,
        response_of: None,
        promotion_id: None,
        channel,
        store,
        amount,
        discount,
        staple: b.staple,
    }
}

fn promo_discount<R: Rng>(rng: &mut R, kind: &str, amount: i64) -> i64 {
    match kind {
        "coupon" => [500, 1000, 1500, 2000][rng.random_range(0..4)],
        "discount" | "flash_sale" => {
            let d = rng.random_range(0.10..0.30);
            (amount as f64 * d / (1.0 - d)).round() as i64
        }
        "bundle" => (amount as f64 * 0.15 / 0.85).round() as i64,
        "free_shipping" => 599,
        _ => 0,
    }
}

/// Order lines with `Σ quantity × unit_price = amount + discount` exactly.
fn lines<R: Rng>(
    m: &Model,
    rng: &mut R,
    b: &Behaviour,
    d: &Draft,
    order: u32,
    items: &mut Vec<ItemRow>,
) {
    let gross = d.amount + d.discount;
    let mut n = pick(&m.lines, rng) + 1;
    n = n.min((gross / 100).max(1) as usize);
    let mut picked: Vec<(usize, i32, f64)> = Vec::with_capacity(n);
    for k in 0..n {
        let cat = match (k, d.staple) {
            (0, Some(c)) => c,
            _ if chance(rng, 0.35) => b.favourite,
            _ => pick(&m.category, rng),
        };
        let u = rng.random::<f64>();
        let qty = if CATEGORIES[cat].cycle_days.is_some() {
            if u < 0.6 {
                1
            } else if u < 0.85 {
                2
            } else if u < 0.95 {
                3
            } else {
                4
            }
        } else if u < 0.85 {
            1
        } else if u < 0.97 {
            2
        } else {
            3
        };
        let w = CATEGORIES[cat].price_level * rng.random_range(0.5..1.5) * f64::from(qty);
        picked.push((cat, qty, w));
    }
    let residual = match picked.iter().position(|p| p.1 == 1) {
        Some(r) => r,
        None => {
            picked[0].1 = 1;
            0
        }
    };
    let total_w: f64 = picked.iter().map(|p| p.2).sum();
    let mut units: Vec<i64> = picked
        .iter()
        .map(|&(_, qty, w)| (((gross as f64 * w / total_w).floor() as i64) / i64::from(qty)).max(1))
        .collect();
    let others: i64 = picked
        .iter()
        .zip(&units)
        .enumerate()
        .filter(|(k, _)| *k != residual)
        .map(|(_, (p, u))| u * i64::from(p.1))
        .sum();
    units[residual] = gross - others;
    if units[residual] < 1 {
        picked.truncate(1);
        picked[0].1 = 1;
        units = vec![gross];
    }
    for (k, (&(cat, qty, _), &unit_price)) in picked.iter().zip(&units).enumerate() {
        items.push(ItemRow {
            order,
            line_no: k as i32 + 1,
            category: cat,
            sku: sku_number(rng, cat),
            quantity: qty,
            unit_price,
        });
    }
}

// ---------------------------------------------------------------------------
// Record batches
// ---------------------------------------------------------------------------

fn ts_array(v: impl Iterator<Item = i64>) -> ArrayRef {
    Arc::new(
        TimestampMicrosecondArray::from_iter_values(v.map(|s| s * MICROS)).with_timezone("UTC"),
    )
}

fn money_array(v: impl Iterator<Item = Option<i64>>) -> Result<ArrayRef, ArrowError> {
    Ok(Arc::new(
        Decimal128Array::from_iter(v.map(|c| c.map(i128::from))).with_precision_and_scale(
            crate::store::schema::MONEY_PRECISION,
            crate::store::schema::MONEY_SCALE,
        )?,
    ))
}

fn str_array<'a>(v: impl Iterator<Item = Option<&'a str>>) -> ArrayRef {
    Arc::new(StringArray::from_iter(v))
}

fn batch(t: &TableDef, columns: Vec<ArrayRef>) -> Result<RecordBatch, ArrowError> {
    RecordBatch::try_new(t.arrow_schema(), columns)
}

fn customers_batch(rows: &[CustomerRow]) -> Result<RecordBatch, ArrowError> {
    batch(
        &CUSTOMERS,
        vec![
            Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.id))),
            str_array(rows.iter().map(|r| Some(r.name.as_str()))),
            str_array(rows.iter().map(|r| r.phone.as_deref())),
            str_array(rows.iter().map(|r| r.email.as_deref())),
            str_array(rows.iter().map(|r| Some(r.gender))),
            Arc::new(Date32Array::from_iter(rows.iter().map(|r| r.birth_date))),
            str_array(rows.iter().map(|r| r.city)),
            ts_array(rows.iter().map(|r| r.signup)),
            str_array(rows.iter().map(|r| Some(r.signup_channel))),
            str_array(rows.iter().map(|r| Some(r.tier))),
            Arc::new(BooleanArray::from_iter(
                rows.iter().map(|r| Some(r.consent)),
            )),
            ts_array(rows.iter().map(|r| r.updated)),
        ],
    )
}

fn orders_batch(rows: &[OrderRow], order_base: i64) -> Result<RecordBatch, ArrowError> {
    let mut store = StringBuilder::new();
    for r in rows {
        match r.store {
            Some(StoreRef::Store(n)) => {
                let _ = write!(store, "ST{n:04}");
                store.append_value("");
            }
            Some(StoreRef::Market(k)) => store.append_value(MARKETPLACES[k]),
            None => store.append_null(),
        }
    }
    batch(
        &ORDERS,
        vec![
            Arc::new(Int64Array::from_iter_values(
                (0..rows.len() as i64).map(|k| order_base + k + 1),
            )),
            Arc::new(Int64Array::from_iter_values(
                rows.iter().map(|r| r.customer_id),
            )),
            ts_array(rows.iter().map(|r| r.ts)),
            str_array(rows.iter().map(|r| Some(r.channel))),
            Arc::new(store.finish()),
            money_array(rows.iter().map(|r| Some(r.amount)))?,
            money_array(rows.iter().map(|r| Some(r.discount)))?,
            Arc::new(Int64Array::from_iter(rows.iter().map(|r| r.promotion_id))),
            str_array(rows.iter().map(|r| Some(r.status))),
        ],
    )
}

fn items_batch(rows: &[ItemRow], order_base: i64) -> Result<RecordBatch, ArrowError> {
    let mut sku = StringBuilder::new();
    for r in rows {
        let _ = write!(sku, "{}-{:05}", CATEGORIES[r.category].prefix, r.sku);
        sku.append_value("");
    }
    batch(
        &ORDER_ITEMS,
        vec![
            Arc::new(Int64Array::from_iter_values(
                rows.iter().map(|r| order_base + i64::from(r.order) + 1),
            )),
            Arc::new(Int32Array::from_iter_values(rows.iter().map(|r| r.line_no))),
            Arc::new(sku.finish()),
            str_array(rows.iter().map(|r| Some(CATEGORIES[r.category].name))),
            Arc::new(Int32Array::from_iter_values(
                rows.iter().map(|r| r.quantity),
            )),
            money_array(rows.iter().map(|r| Some(r.unit_price)))?,
        ],
    )
}

fn interactions_batch(
    rows: &[InteractionRow],
    base: i64,
    order_base: i64,
) -> Result<RecordBatch, ArrowError> {
    let mut reference = StringBuilder::new();
    for r in rows {
        match &r.reference {
            Ref::None => {
                reference.append_null();
                continue;
            }
            Ref::Sku(c, n) => {
                let _ = write!(reference, "{}-{n:05}", CATEGORIES[*c].prefix);
            }
            Ref::Order(k) => {
                let _ = write!(reference, "{}", order_base + i64::from(*k) + 1);
            }
            Ref::Store(n) => {
                let _ = write!(reference, "ST{n:04}");
            }
            Ref::Customer(c) => {
                let _ = write!(reference, "{c}");
            }
            Ref::Promotion(p) => {
                let _ = write!(reference, "promo-{p}");
            }
            Ref::Text(t) => {
                let _ = write!(reference, "{t}");
            }
            Ref::Month(t) => {
                let d = chrono::DateTime::from_timestamp(*t, 0).unwrap_or_default();
                let _ = write!(reference, "newsletter-{}", d.format("%Y-%m"));
            }
        }
        reference.append_value("");
    }
    batch(
        &INTERACTIONS,
        vec![
            Arc::new(Int64Array::from_iter_values(
                (0..rows.len() as i64).map(|k| base + k + 1),
            )),
            Arc::new(Int64Array::from_iter_values(
                rows.iter().map(|r| r.customer_id),
            )),
            ts_array(rows.iter().map(|r| r.ts)),
            str_array(rows.iter().map(|r| Some(r.channel))),
            str_array(rows.iter().map(|r| Some(r.kind))),
            Arc::new(reference.finish()),
            Arc::new(Float64Array::from_iter(rows.iter().map(|r| r.value))),
        ],
    )
}

fn exposures_batch(rows: &[ExposureRow]) -> Result<RecordBatch, ArrowError> {
    batch(
        &PROMOTION_EXPOSURES,
        vec![
            Arc::new(Int64Array::from_iter_values(
                rows.iter().map(|r| r.promotion_id),
            )),
            Arc::new(Int64Array::from_iter_values(
                rows.iter().map(|r| r.customer_id),
            )),
            ts_array(rows.iter().map(|r| r.ts)),
            str_array(rows.iter().map(|r| Some(r.channel))),
            Arc::new(BooleanArray::from_iter(
                rows.iter().map(|r| Some(r.is_control)),
            )),
        ],
    )
}

fn promotions_batch(m: &Model, stats: &[PromoStats]) -> Result<RecordBatch, ArrowError> {
    let p = &m.promos;
    batch(
        &PROMOTIONS,
        vec![
            Arc::new(Int64Array::from_iter_values(p.iter().map(|p| p.id))),
            str_array(p.iter().map(|p| Some(p.name.as_str()))),
            str_array(p.iter().map(|p| Some(p.kind))),
            str_array(p.iter().map(|p| Some(p.channel))),
            ts_array(p.iter().map(|p| p.start)),
            ts_array(p.iter().map(|p| p.end)),
            money_array(
                p.iter()
                    .zip(stats)
                    .map(|(p, s)| Some(p.cost_per_contact_cents * s.treated as i64)),
            )?,
            str_array(p.iter().map(|p| Some(p.segment))),
        ],
    )
}

// ---------------------------------------------------------------------------
// Writers
// ---------------------------------------------------------------------------

enum Sink {
    Csv(Box<datafusion::arrow::csv::Writer<BufWriter<File>>>),
    Parquet(Box<ArrowWriter<File>>),
}

struct TableSink {
    table: &'static TableDef,
    path: PathBuf,
    sink: Sink,
    rows: u64,
}

impl TableSink {
    fn create(
        dir: &Path,
        table: &'static TableDef,
        format: OutputFormat,
    ) -> Result<TableSink, GenerateError> {
        let path = dir.join(format!("{}.{}", table.name, format.extension()));
        let file = File::create(&path).map_err(|source| GenerateError::Io {
            path: path.clone(),
            source,
        })?;
        let sink = match format {
            OutputFormat::Csv => Sink::Csv(Box::new(
                CsvWriterBuilder::new()
                    .with_header(true)
                    .with_date_format("%Y-%m-%d".to_string())
                    .with_timestamp_tz_format("%Y-%m-%dT%H:%M:%SZ".to_string())
                    .build(BufWriter::with_capacity(1 << 20, file)),
            )),
            OutputFormat::Parquet => {
                let props = WriterProperties::builder()
                    .set_compression(Compression::ZSTD(ZstdLevel::default()))
                    .set_max_row_group_row_count(Some(1 << 20))
                    .set_statistics_enabled(EnabledStatistics::Page)
                    .set_created_by("crmdb generate".to_string())
                    .build();
                let w = ArrowWriter::try_new(file, table.arrow_schema(), Some(props)).map_err(
                    |source| GenerateError::Parquet {
                        path: path.clone(),
                        source,
                    },
                )?;
                Sink::Parquet(Box::new(w))
            }
        };
        Ok(TableSink {
            table,
            path,
            sink,
            rows: 0,
        })
    }

    fn write(&mut self, batch: Result<RecordBatch, ArrowError>) -> Result<(), GenerateError> {
        let batch = batch.map_err(|source| GenerateError::Arrow {
            path: self.path.clone(),
            source,
        })?;
        self.rows += batch.num_rows() as u64;
        match &mut self.sink {
            Sink::Csv(w) => w.write(&batch).map_err(|source| GenerateError::Arrow {
                path: self.path.clone(),
                source,
            }),
            Sink::Parquet(w) => w.write(&batch).map_err(|source| GenerateError::Parquet {
                path: self.path.clone(),
                source,
            }),
        }
    }

    fn finish(self) -> Result<(String, u64, PathBuf, u64), GenerateError> {
        let path = self.path;
        match self.sink {
            Sink::Csv(w) => {
                let mut inner = (*w).into_inner();
                inner.flush().map_err(|source| GenerateError::Io {
                    path: path.clone(),
                    source,
                })?;
            }
            Sink::Parquet(w) => {
                w.close().map_err(|source| GenerateError::Parquet {
                    path: path.clone(),
                    source,
                })?;
            }
        }
        let bytes = std::fs::metadata(&path)
            .map_err(|source| GenerateError::Io {
                path: path.clone(),
                source,
            })?
            .len();
        Ok((self.table.name.to_string(), self.rows, path, bytes))
    }
}

/// Generate the data set described in the module docs. `progress` is called
/// with `("customers", customers_written_so_far)` after every chunk and with
/// `(table, rows)` when a table's file is complete. Prints nothing.
pub fn generate(
    opts: &GenerateOptions,
    progress: &dyn Fn(&str, u64),
) -> Result<GenerateSummary, GenerateError> {
    if opts.customers == 0 || opts.customers > MAX_CUSTOMERS {
        return Err(GenerateError::BadOption(format!(
            "--customers must be between 1 and {MAX_CUSTOMERS}, got {}",
            opts.customers
        )));
    }
    if !(1..=20).contains(&opts.years) {
        return Err(GenerateError::BadOption(format!(
            "--years must be between 1 and 20, got {}",
            opts.years
        )));
    }
    let model = Model::new(opts)?;
    std::fs::create_dir_all(&opts.out).map_err(|source| GenerateError::Io {
        path: opts.out.clone(),
        source,
    })?;
    let mut sinks = Vec::with_capacity(6);
    for t in [
        &CUSTOMERS,
        &ORDERS,
        &ORDER_ITEMS,
        &INTERACTIONS,
        &PROMOTIONS,
        &PROMOTION_EXPOSURES,
    ] {
        sinks.push(TableSink::create(&opts.out, t, opts.format)?);
    }
    let [
        customers,
        orders,
        items,
        interactions,
        promotions,
        exposures,
    ] = &mut sinks[..]
    else {
        return Err(GenerateError::Internal("sink list".into()));
    };

    let n_chunks = opts.customers.div_ceil(CHUNK_CUSTOMERS);
    let workers = std::thread::available_parallelism()
        .map(|n| n.get() as u64)
        .unwrap_or(1)
        .clamp(1, 4)
        .min(n_chunks);
    let mut stats = vec![PromoStats::default(); model.promos.len()];
    let mut order_base = 0i64;
    let mut interaction_base = 0i64;
    let model_ref = &model;
    std::thread::scope(|s| -> Result<(), GenerateError> {
        let mut receivers = Vec::new();
        for w in 0..workers {
            let (tx, rx) = sync_channel::<Chunk>(1);
            receivers.push(rx);
            s.spawn(move || {
                let mut k = w;
                while k < n_chunks {
                    if tx.send(generate_chunk(model_ref, k)).is_err() {
                        return;
                    }
                    k += workers;
                }
            });
        }
        for k in 0..n_chunks {
            let chunk = receivers[(k % workers) as usize].recv().map_err(|_| {
                GenerateError::Internal(format!("generator thread for chunk {k} stopped"))
            })?;
            customers.write(customers_batch(&chunk.customers))?;
            orders.write(orders_batch(&chunk.orders, order_base))?;
            items.write(items_batch(&chunk.items, order_base))?;
            interactions.write(interactions_batch(
                &chunk.interactions,
                interaction_base,
                order_base,
            ))?;
            exposures.write(exposures_batch(&chunk.exposures))?;
            order_base += chunk.orders.len() as i64;
            interaction_base += chunk.interactions.len() as i64;
            for (acc, s) in stats.iter_mut().zip(&chunk.stats) {
                acc.treated += s.treated;
                acc.control += s.control;
                acc.quiet_treated += s.quiet_treated;
                acc.quiet_control += s.quiet_control;
                acc.quiet_treated_completed += s.quiet_treated_completed;
                acc.quiet_control_completed += s.quiet_control_completed;
            }
            progress("customers", ((k + 1) * CHUNK_CUSTOMERS).min(opts.customers));
        }
        Ok(())
    })?;
    promotions.write(promotions_batch(&model, &stats))?;

    let mut tables = Vec::with_capacity(6);
    for sink in sinks {
        let done = sink.finish()?;
        progress(&done.0, done.1);
        tables.push(done);
    }
    let truth_file = opts.out.join(TRUTH_FILE);
    write_truth(&truth_file, &model.promos, &stats)?;
    Ok(GenerateSummary { tables, truth_file })
}

/// One row of `promotions_truth.csv`.
#[derive(Debug, Clone, PartialEq)]
pub struct PromotionTruth {
    /// The promotion.
    pub promotion_id: i64,
    /// Treated exposures.
    pub treated: u64,
    /// Control exposures.
    pub control: u64,
    /// Designed control response probability.
    pub base_rate: f64,
    /// Designed uplift of the response probability.
    pub designed_uplift: f64,
    /// Expected share of treated customers with a non-cancelled order in the
    /// window: `1 - (1 - base_rate - designed_uplift) * quiet`, where `quiet`
    /// is the share of the promotion's exposures (both groups) with no other
    /// non-cancelled order in their window.
    pub expected_treated_rate: f64,
    /// Expected share of control customers with a non-cancelled order in the
    /// window: `1 - (1 - base_rate) * quiet`.
    pub expected_control_rate: f64,
    /// `expected_treated_rate - expected_control_rate = designed_uplift * quiet`:
    /// the average effect of the promotion on the response rate of the exposed
    /// customers, which the treated − control difference estimates without bias.
    pub true_uplift: f64,
    /// The same as `true_uplift` when only `status = 'completed'` orders count.
    pub true_uplift_completed: f64,
}

fn truths(promos: &[PromotionPlan], stats: &[PromoStats]) -> Vec<PromotionTruth> {
    promos
        .iter()
        .zip(stats)
        .map(|(p, s)| {
            // Share of exposures (both groups) with no other order in the window.
            let n = (s.treated + s.control) as f64;
            let quiet = (s.quiet_treated + s.quiet_control) / n;
            let quiet_c = (s.quiet_treated_completed + s.quiet_control_completed) / n;
            let (tq, cq) = (p.base_rate + p.uplift, p.base_rate);
            let rate = |q: f64, quiet: f64| {
                if n > 0.0 {
                    1.0 - (1.0 - q) * quiet
                } else {
                    f64::NAN
                }
            };
            let (t, c) = (rate(tq, quiet), rate(cq, quiet));
            let (tc, cc) = (rate(tq, quiet_c), rate(cq, quiet_c));
            PromotionTruth {
                promotion_id: p.id,
                treated: s.treated,
                control: s.control,
                base_rate: p.base_rate,
                designed_uplift: p.uplift,
                expected_treated_rate: t,
                expected_control_rate: c,
                true_uplift: t - c,
                true_uplift_completed: tc - cc,
            }
        })
        .collect()
}

fn fmt_rate(x: f64) -> String {
    if x.is_finite() {
        format!("{x:.6}")
    } else {
        String::new()
    }
}

fn write_truth(
    path: &Path,
    promos: &[PromotionPlan],
    stats: &[PromoStats],
) -> Result<(), GenerateError> {
    let mut s = String::from(
        "promotion_id,treated,control,base_rate,designed_uplift,expected_treated_rate,expected_control_rate,true_uplift,true_uplift_completed\n",
    );
    for t in truths(promos, stats) {
        let _ = writeln!(
            s,
            "{},{},{},{:.4},{:.4},{},{},{},{}",
            t.promotion_id,
            t.treated,
            t.control,
            t.base_rate,
            t.designed_uplift,
            fmt_rate(t.expected_treated_rate),
            fmt_rate(t.expected_control_rate),
            fmt_rate(t.true_uplift),
            fmt_rate(t.true_uplift_completed)
        );
    }
    std::fs::write(path, s).map_err(|source| GenerateError::Io {
        path: path.to_path_buf(),
        source,
    })
}

/// Read a `promotions_truth.csv` written by [`generate`].
pub fn read_truth(path: &Path) -> Result<Vec<PromotionTruth>, GenerateError> {
    let text = std::fs::read_to_string(path).map_err(|source| GenerateError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let bad = |line: usize, what: &str| {
        GenerateError::BadOption(format!("{}: line {line}: bad {what}", path.display()))
    };
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate().skip(1) {
        let f: Vec<&str> = line.split(',').collect();
        if f.len() != 9 {
            return Err(bad(i + 1, "field count"));
        }
        let num = |k: usize, name: &str| -> Result<f64, GenerateError> {
            if f[k].is_empty() {
                Ok(f64::NAN)
            } else {
                f[k].parse().map_err(|_| bad(i + 1, name))
            }
        };
        out.push(PromotionTruth {
            promotion_id: f[0].parse().map_err(|_| bad(i + 1, "promotion_id"))?,
            treated: f[1].parse().map_err(|_| bad(i + 1, "treated"))?,
            control: f[2].parse().map_err(|_| bad(i + 1, "control"))?,
            base_rate: num(3, "base_rate")?,
            designed_uplift: num(4, "designed_uplift")?,
            expected_treated_rate: num(5, "expected_treated_rate")?,
            expected_control_rate: num(6, "expected_control_rate")?,
            true_uplift: num(7, "true_uplift")?,
            true_uplift_completed: num(8, "true_uplift_completed")?,
        });
    }
    Ok(out)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use std::collections::{BTreeMap, BTreeSet};
    use std::sync::OnceLock;

    use super::*;

    /// Read a generated CSV: header and rows of fields.
    fn read_csv(path: &Path) -> (Vec<String>, Vec<Vec<String>>) {
        let mut r = csv::Reader::from_path(path).unwrap();
        let header = r.headers().unwrap().iter().map(str::to_string).collect();
        let rows = r
            .records()
            .map(|rec| rec.unwrap().iter().map(str::to_string).collect())
            .collect();
        (header, rows)
    }

    struct Data {
        _dir: tempfile::TempDir,
        summary: GenerateSummary,
        tables: BTreeMap<String, (Vec<String>, Vec<Vec<String>>)>,
    }

    impl Data {
        fn rows(&self, table: &str) -> &Vec<Vec<String>> {
            &self.tables[table].1
        }
        fn col(&self, table: &str, column: &str) -> usize {
            self.tables[table]
                .0
                .iter()
                .position(|c| c == column)
                .unwrap()
        }
    }

    const N: u64 = 20_000;

    /// One 20,000-customer CSV data set shared by the tests.
    fn data() -> &'static Data {
        static DATA: OnceLock<Data> = OnceLock::new();
        DATA.get_or_init(|| {
            let dir = tempfile::tempdir().unwrap();
            let summary = generate(&GenerateOptions::new(N, 7, dir.path()), &|_, _| {}).unwrap();
            let tables = summary
                .tables
                .iter()
                .map(|(t, _, p, _)| (t.clone(), read_csv(p)))
                .collect();
            Data {
                _dir: dir,
                summary,
                tables,
            }
        })
    }

    fn ts(s: &str) -> i64 {
        chrono::DateTime::parse_from_rfc3339(s).unwrap().timestamp()
    }

    fn cents(s: &str) -> i64 {
        let (units, frac) = s.split_once('.').unwrap();
        units.parse::<i64>().unwrap() * 100 + frac.parse::<i64>().unwrap()
    }

    #[test]
    fn same_seed_same_bytes_other_seed_other_bytes() {
        let run = |seed: u64, format: OutputFormat| {
            let dir = tempfile::tempdir().unwrap();
            let mut opts = GenerateOptions::new(2_500, seed, dir.path());
            opts.format = format;
            let summary = generate(&opts, &|_, _| {}).unwrap();
            let mut files: Vec<Vec<u8>> = summary
                .tables
                .iter()
                .map(|t| std::fs::read(&t.2).unwrap())
                .collect();
            files.push(std::fs::read(&summary.truth_file).unwrap());
            files
        };
        let a = run(1, OutputFormat::Csv);
        assert_eq!(a.len(), 7);
        assert_eq!(a, run(1, OutputFormat::Csv));
        assert_ne!(a[1], run(2, OutputFormat::Csv)[1]);
        assert_eq!(run(1, OutputFormat::Parquet), run(1, OutputFormat::Parquet));
    }

    #[test]
    fn headers_are_the_canonical_columns_and_files_are_named_by_table() {
        let d = data();
        let names: Vec<&str> = d.summary.tables.iter().map(|t| t.0.as_str()).collect();
        assert_eq!(
            names,
            crate::store::schema::TABLES
                .iter()
                .map(|t| t.name)
                .collect::<Vec<_>>()
        );
        for (table, rows, path, bytes) in &d.summary.tables {
            let def = crate::store::schema::table(table).unwrap();
            assert_eq!(
                d.tables[table].0,
                def.columns.iter().map(|c| c.name).collect::<Vec<_>>()
            );
            assert_eq!(*rows, d.tables[table].1.len() as u64, "{table}");
            assert_eq!(
                path.file_name().unwrap().to_str().unwrap(),
                format!("{table}.csv")
            );
            assert_eq!(*bytes, std::fs::metadata(path).unwrap().len());
        }
    }

    #[test]
    fn row_counts_are_in_the_expected_ranges() {
        let d = data();
        let n = N as f64;
        let per = |t: &str| d.rows(t).len() as f64 / n;
        assert_eq!(d.rows("customers").len() as u64, N);
        assert_eq!(d.rows("promotions").len(), PROMOTION_COUNT);
        let (orders, items, touches, exposures) = (
            per("orders"),
            per("order_items"),
            per("interactions"),
            per("promotion_exposures"),
        );
        assert!(
            (8.0..12.0).contains(&orders),
            "orders per customer {orders}"
        );
        assert!(
            (1.8..2.2).contains(&(items / orders)),
            "lines per order {}",
            items / orders
        );
        assert!(
            (4.0..6.0).contains(&touches),
            "interactions per customer {touches}"
        );
        assert!(
            (1.0..8.0).contains(&exposures),
            "exposures per customer {exposures}"
        );
        // Prospects: customers with no order at all.
        let c = d.col("orders", "customer_id");
        let buyers: BTreeSet<&str> = d.rows("orders").iter().map(|r| r[c].as_str()).collect();
        let prospects = 1.0 - buyers.len() as f64 / n;
        assert!(
            (0.15..0.25).contains(&prospects),
            "prospect share {prospects}"
        );
    }

    #[test]
    fn references_resolve() {
        let d = data();
        let ids = |t: &str, c: &str| -> BTreeSet<String> {
            let k = d.col(t, c);
            d.rows(t).iter().map(|r| r[k].clone()).collect()
        };
        let customers = ids("customers", "customer_id");
        let orders = ids("orders", "order_id");
        let promotions = ids("promotions", "promotion_id");
        assert_eq!(customers.len(), N as usize);
        assert_eq!(orders.len(), d.rows("orders").len(), "order ids are unique");
        assert!(ids("orders", "customer_id").is_subset(&customers));
        assert!(ids("order_items", "order_id").is_subset(&orders));
        assert!(ids("interactions", "customer_id").is_subset(&customers));
        assert!(ids("promotion_exposures", "customer_id").is_subset(&customers));
        assert!(ids("promotion_exposures", "promotion_id").is_subset(&promotions));
        let p = d.col("orders", "promotion_id");
        assert!(
            d.rows("orders")
                .iter()
                .filter(|r| !r[p].is_empty())
                .all(|r| promotions.contains(&r[p]))
        );
        let (kind, reference) = (d.col("interactions", "kind"), d.col("interactions", "ref"));
        let referred: Vec<&Vec<String>> = d
            .rows("interactions")
            .iter()
            .filter(|r| r[kind] == "referral")
            .collect();
        assert!(referred.len() > 500, "{} referrals", referred.len());
        assert!(referred.iter().all(|r| customers.contains(&r[reference])));
        let complaints_on_orders = d
            .rows("interactions")
            .iter()
            .filter(|r| r[kind] == "complaint" && r[reference].chars().all(|c| c.is_ascii_digit()))
            .filter(|r| orders.contains(&r[reference]))
            .count();
        assert!(complaints_on_orders > 100, "{complaints_on_orders}");
        let keys: BTreeSet<(String, String)> = d
            .rows("order_items")
            .iter()
            .map(|r| (r[0].clone(), r[1].clone()))
            .collect();
        assert_eq!(
            keys.len(),
            d.rows("order_items").len(),
            "(order_id, line_no) is unique"
        );
        let keys: BTreeSet<(String, String)> = d
            .rows("promotion_exposures")
            .iter()
            .map(|r| (r[0].clone(), r[1].clone()))
            .collect();
        assert_eq!(
            keys.len(),
            d.rows("promotion_exposures").len(),
            "(promotion_id, customer_id) is unique"
        );
    }

    #[test]
    fn control_share_is_ten_percent() {
        let d = data();
        let k = d.col("promotion_exposures", "is_control");
        let rows = d.rows("promotion_exposures");
        assert!(rows.iter().all(|r| r[k] == "true" || r[k] == "false"));
        let share = rows.iter().filter(|r| r[k] == "true").count() as f64 / rows.len() as f64;
        assert!(
            (share - CONTROL_SHARE).abs() < 0.01,
            "control share {share}"
        );
    }

    #[test]
    fn statuses_and_values_follow_the_conventions() {
        let d = data();
        let orders = d.rows("orders");
        let st = d.col("orders", "status");
        let share =
            |s: &str| orders.iter().filter(|r| r[st] == s).count() as f64 / orders.len() as f64;
        assert!(
            (0.015..0.025).contains(&share("cancelled")),
            "cancelled {}",
            share("cancelled")
        );
        assert!(
            (0.03..0.05).contains(&share("returned")),
            "returned {}",
            share("returned")
        );
        assert!((share("completed") + share("returned") + share("cancelled") - 1.0).abs() < 1e-12);
        let money = |s: &str| {
            let b = s.as_bytes();
            b.len() >= 4
                && b[b.len() - 3] == b'.'
                && s.bytes().filter(|c| *c != b'.').all(|c| c.is_ascii_digit())
        };
        for (t, c) in [
            ("orders", "amount"),
            ("orders", "discount"),
            ("order_items", "unit_price"),
            ("promotions", "cost"),
        ] {
            let k = d.col(t, c);
            assert!(
                d.rows(t).iter().all(|r| money(&r[k])),
                "{t}.{c} has 2 decimals"
            );
        }
        let rfc3339 = |s: &str| {
            s.len() == 20 && s.ends_with('Z') && chrono::DateTime::parse_from_rfc3339(s).is_ok()
        };
        for (t, c) in [
            ("customers", "signup_at"),
            ("customers", "updated_at"),
            ("orders", "order_ts"),
            ("interactions", "ts"),
        ] {
            let k = d.col(t, c);
            assert!(
                d.rows(t).iter().all(|r| rfc3339(&r[k])),
                "{t}.{c} is RFC 3339 UTC"
            );
        }
        let (b, s, u) = (
            d.col("customers", "birth_date"),
            d.col("customers", "signup_at"),
            d.col("customers", "updated_at"),
        );
        for r in d.rows("customers") {
            assert!(
                r[b].is_empty() || NaiveDate::parse_from_str(&r[b], "%Y-%m-%d").is_ok(),
                "{}",
                r[b]
            );
            assert!(ts(&r[u]) >= ts(&r[s]));
        }
        let consent = d.col("customers", "marketing_consent");
        let yes = d
            .rows("customers")
            .iter()
            .filter(|r| r[consent] == "true")
            .count() as f64
            / N as f64;
        assert!((0.6..0.7).contains(&yes), "consent {yes}");
        // Surveys are 0-10 integers; reviews 1-5.
        let (kind, value) = (
            d.col("interactions", "kind"),
            d.col("interactions", "value"),
        );
        for r in d.rows("interactions") {
            let v = || r[value].parse::<f64>().unwrap();
            match r[kind].as_str() {
                "survey" => assert!(
                    (0.0..=10.0).contains(&v()) && v().fract() == 0.0,
                    "{}",
                    r[value]
                ),
                "review" => assert!((1.0..=5.0).contains(&v())),
                _ => {}
            }
        }
    }

    #[test]
    fn lines_add_up_to_amount_plus_discount() {
        let d = data();
        let mut gross: BTreeMap<&str, i64> = BTreeMap::new();
        let (q, p) = (
            d.col("order_items", "quantity"),
            d.col("order_items", "unit_price"),
        );
        for r in d.rows("order_items") {
            *gross.entry(r[0].as_str()).or_default() += r[q].parse::<i64>().unwrap() * cents(&r[p]);
        }
        let (a, disc) = (d.col("orders", "amount"), d.col("orders", "discount"));
        for r in d.rows("orders") {
            assert_eq!(
                gross[r[0].as_str()],
                cents(&r[a]) + cents(&r[disc]),
                "order {}",
                r[0]
            );
        }
    }

    #[test]
    fn orders_fall_between_signup_and_the_end_date() {
        let d = data();
        let s = d.col("customers", "signup_at");
        let signup: BTreeMap<&str, i64> = d
            .rows("customers")
            .iter()
            .map(|r| (r[0].as_str(), ts(&r[s])))
            .collect();
        let (_, end) = history_window(default_end_date(), 3).unwrap();
        let t = d.col("orders", "order_ts");
        for r in d.rows("orders") {
            let o = ts(&r[t]);
            assert!(
                o >= signup[r[1].as_str()] && o <= end,
                "order {} at {}",
                r[0],
                r[t]
            );
        }
        let t = d.col("order_items", "category");
        let cats: BTreeSet<&str> = d
            .rows("order_items")
            .iter()
            .map(|r| r[t].as_str())
            .collect();
        assert_eq!(cats.len(), CATEGORIES.len());
    }

    /// The observed response rates agree with the expected rates of the truth
    /// file, and the treated − control difference covers the true uplift in
    /// most promotions.
    #[test]
    fn truth_file_matches_observed_responses() {
        let d = data();
        let truth = read_truth(&d.summary.truth_file).unwrap();
        assert_eq!(truth.len(), PROMOTION_COUNT);
        // Orders per customer, non-cancelled, by time.
        let (t, st) = (d.col("orders", "order_ts"), d.col("orders", "status"));
        let mut orders: BTreeMap<&str, Vec<i64>> = BTreeMap::new();
        for r in d.rows("orders").iter().filter(|r| r[st] != "cancelled") {
            orders.entry(r[1].as_str()).or_default().push(ts(&r[t]));
        }
        // (treated, treated responders, control, control responders) per promotion.
        let mut seen: BTreeMap<i64, [f64; 4]> = BTreeMap::new();
        let (e, c) = (
            d.col("promotion_exposures", "exposed_at"),
            d.col("promotion_exposures", "is_control"),
        );
        for r in d.rows("promotion_exposures") {
            let at = ts(&r[e]);
            let responded = orders.get(r[1].as_str()).is_some_and(|v| {
                v.iter()
                    .any(|&o| o > at && o <= at + RESPONSE_WINDOW_DAYS * DAY)
            });
            let s = seen.entry(r[0].parse().unwrap()).or_default();
            let k = if r[c] == "true" { 2 } else { 0 };
            s[k] += 1.0;
            s[k + 1] += f64::from(u8::from(responded));
        }
        let (mut obs, mut exp, mut var) = (0.0, 0.0, 0.0);
        let (mut covered, mut tested) = (0, 0);
        for tr in &truth {
            let s = seen[&tr.promotion_id];
            assert_eq!((s[0] as u64, s[2] as u64), (tr.treated, tr.control));
            obs += s[1];
            exp += s[0] * tr.expected_treated_rate;
            var += s[0] * tr.expected_treated_rate * (1.0 - tr.expected_treated_rate);
            if s[2] >= 30.0 {
                let (pt, pc) = (s[1] / s[0], s[3] / s[2]);
                let se = (pt * (1.0 - pt) / s[0] + pc * (1.0 - pc) / s[2]).sqrt();
                tested += 1;
                covered += usize::from(((pt - pc) - tr.true_uplift).abs() <= 1.96 * se);
            }
            if tr.treated + tr.control > 0 {
                let (t, u) = (tr.true_uplift, tr.designed_uplift);
                assert!(t <= u + 1e-12 && t >= 0.5 * u, "{tr:?}");
                assert!((tr.expected_treated_rate - tr.expected_control_rate - t).abs() < 2e-6);
            }
        }
        assert!(
            (obs - exp).abs() < 4.0 * var.sqrt(),
            "treated responders {obs}, expected {exp}"
        );
        assert!(
            tested >= 40,
            "{tested} promotions with a control group of 30+"
        );
        assert!(
            covered as f64 >= 0.85 * tested as f64,
            "{covered} of {tested} intervals cover the truth"
        );
    }

    #[test]
    fn parquet_has_the_exact_arrow_schema() {
        use datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
        let dir = tempfile::tempdir().unwrap();
        let mut opts = GenerateOptions::new(1_000, 3, dir.path());
        opts.format = OutputFormat::Parquet;
        let summary = generate(&opts, &|_, _| {}).unwrap();
        let csv_dir = tempfile::tempdir().unwrap();
        let csv = generate(&GenerateOptions::new(1_000, 3, csv_dir.path()), &|_, _| {}).unwrap();
        for ((table, rows, path, _), csv_table) in summary.tables.iter().zip(&csv.tables) {
            let def = crate::store::schema::table(table).unwrap();
            let reader =
                ParquetRecordBatchReaderBuilder::try_new(File::open(path).unwrap()).unwrap();
            assert_eq!(
                reader.schema().fields(),
                def.arrow_schema().fields(),
                "{table}"
            );
            let n: usize = reader.build().unwrap().map(|b| b.unwrap().num_rows()).sum();
            assert_eq!(n as u64, *rows);
            assert_eq!(*rows, csv_table.1, "{table}: same rows as CSV");
        }
    }

    #[test]
    fn bad_options_are_rejected() {
        let dir = tempfile::tempdir().unwrap();
        let err = generate(&GenerateOptions::new(0, 1, dir.path()), &|_, _| {}).unwrap_err();
        assert_eq!(
            err.to_string(),
            "generate: --customers must be between 1 and 100000000, got 0"
        );
        let mut opts = GenerateOptions::new(10, 1, dir.path());
        opts.years = 0;
        let err = generate(&opts, &|_, _| {}).unwrap_err();
        assert_eq!(
            err.to_string(),
            "generate: --years must be between 1 and 20, got 0"
        );
        assert_eq!(
            "Parquet".parse::<OutputFormat>().unwrap(),
            OutputFormat::Parquet
        );
        assert_eq!(
            "xml".parse::<OutputFormat>().unwrap_err().to_string(),
            "generate: --format must be csv or parquet, got 'xml'"
        );
    }

    #[test]
    fn promotion_plan_is_deterministic_and_spread_over_the_window() {
        let (start, end) = history_window(default_end_date(), 3).unwrap();
        assert_eq!(
            start,
            NaiveDate::from_ymd_opt(2023, 7, 1)
                .unwrap()
                .and_hms_opt(0, 0, 0)
                .unwrap()
                .and_utc()
                .timestamp()
        );
        let plan = plan_promotions(42, start, end);
        assert_eq!(plan, plan_promotions(42, start, end));
        assert_eq!(plan.len(), PROMOTION_COUNT);
        assert!(plan.windows(2).all(|w| w[0].start <= w[1].start));
        assert!(
            plan.iter()
                .all(|p| p.start > start && p.start + RESPONSE_WINDOW_DAYS * DAY + 2 * DAY < end)
        );
        assert!(plan.iter().any(|p| p.uplift == 0.0));
        assert!(
            plan.iter()
                .all(|p| (0.0..=0.12).contains(&p.uplift) && (0.02..0.08).contains(&p.base_rate))
        );
    }

    /// Scale check: `CRMDB_GEN_CUSTOMERS=100000 CRMDB_GEN_FORMAT=parquet cargo test
    /// -p crmdb-udfs -p crmdb --lib -- --ignored generate_at_scale --nocapture`
    /// prints rows, bytes and the time taken (seed 1; set `CRMDB_GEN_OUT=DIR`
    /// to keep the files).
    #[test]
    #[ignore]
    fn generate_at_scale() {
        let n = std::env::var("CRMDB_GEN_CUSTOMERS").map_or(100_000, |v| v.parse().unwrap());
        let format =
            std::env::var("CRMDB_GEN_FORMAT").map_or(OutputFormat::Parquet, |v| v.parse().unwrap());
        let dir = tempfile::tempdir().unwrap();
        let out = std::env::var("CRMDB_GEN_OUT").map_or(dir.path().to_path_buf(), PathBuf::from);
        let mut opts = GenerateOptions::new(n, 1, out);
        opts.format = format;
        let started = std::time::Instant::now();
        let summary = generate(&opts, &|_, _| {}).unwrap();
        let secs = started.elapsed().as_secs_f64();
        let mut total = 0;
        for (table, rows, _, bytes) in &summary.tables {
            total += bytes;
            println!(
                "{table:<20} {rows:>11} rows {:>9.1} MB {:>6.2} per customer",
                *bytes as f64 / 1e6,
                *rows as f64 / n as f64
            );
        }
        println!(
            "{n} customers, {format:?}: {secs:.1} s, {:.1} MB",
            total as f64 / 1e6
        );
    }

    /// Regenerates `sample_data/` (2,000 customers, seed 42, CSV):
    /// `cargo test -p crmdb-udfs -p crmdb --lib -- --ignored generate_sample`
    #[test]
    #[ignore]
    fn generate_sample() {
        let out = Path::new(env!("CARGO_MANIFEST_DIR")).join("sample_data");
        let summary = generate(&GenerateOptions::new(2_000, 42, &out), &|_, _| {}).unwrap();
        let total: u64 = summary.tables.iter().map(|t| t.3).sum();
        for t in &summary.tables {
            println!("{} {} rows {} bytes", t.0, t.1, t.3);
        }
        assert!(total < 5_000_000, "sample_data is {total} bytes");
    }
}
