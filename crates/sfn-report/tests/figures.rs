//! Integration tests: every figure kind renders to SVG + PNG; the PNG decodes with the expected size
//! and real content; the SVG is well-formed and carries the title and labels; bad input gives errors.
//!
//! Set SFN_REPORT_SAMPLES=/some/dir to also keep the rendered samples there for a visual check.

use std::collections::HashSet;
use std::fs::File;
use std::io::BufReader;
use std::path::{Path, PathBuf};

use resvg::usvg::roxmltree;
use sfn_report::{
    save, save_with, Bar, BarChart, Figure, Heatmap, Histogram, HistogramCell, HistogramGrid, LineChart, ReportError,
    SaveOptions, Series, SvgDocument,
};

const MODULES: [&str; 9] =
    ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj", "input_norm", "post_attn_norm"];

/// Small deterministic generator (xorshift) so samples look like data without a rand dependency.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> f64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 >> 11) as f64 / (1u64 << 53) as f64
    }
    fn normal(&mut self) -> f64 {
        let (u, v) = (self.next().max(1e-12), self.next());
        (-2.0 * u.ln()).sqrt() * (2.0 * std::f64::consts::PI * v).cos()
    }
}

fn strings<I: IntoIterator<Item = S>, S: ToString>(it: I) -> Vec<String> {
    it.into_iter().map(|s| s.to_string()).collect()
}

fn delta_heatmap(layers: usize, log_scale: bool) -> Heatmap {
    let mut rng = Rng(7);
    let values = (0..layers)
        .map(|l| {
            MODULES
                .iter()
                .enumerate()
                .map(|(m, _)| {
                    // o_proj changes most, norms least: the paper's picture, roughly.
                    let base = if m == 3 {
                        0.08
                    } else if m >= 7 {
                        0.002
                    } else {
                        0.01 + 0.002 * m as f64
                    };
                    base * (1.0 + 0.5 * (l as f64 / layers as f64)) * (0.7 + 0.6 * rng.next())
                })
                .collect()
        })
        .collect();
    let mut h = Heatmap::new(
        format!("Relative weight change per module, {layers} layers"),
        strings(0..layers),
        strings(MODULES),
        values,
    );
    h.value_label = "‖W_B − W_A‖ / ‖W_A‖".into();
    h.log_scale = log_scale;
    h
}

fn delta_bars() -> BarChart {
    let mut rng = Rng(11);
    let bars = MODULES
        .iter()
        .enumerate()
        .map(|(m, name)| {
            let base = if m == 3 {
                0.08
            } else if m >= 7 {
                0.004
            } else {
                0.012 + 0.002 * m as f64
            };
            let points: Vec<f64> = (0..28).map(|_| base * (0.6 + 0.8 * rng.next())).collect();
            let lo = points.iter().copied().fold(f64::INFINITY, f64::min);
            let hi = points.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            Bar { range: Some((lo, hi)), points, ..Bar::new(*name, base) }
        })
        .collect();
    let mut b = BarChart::new("Mean relative change by module kind", "relative change", bars);
    b.x_label = "module".into();
    b.range_label = "min–max over layers".into();
    b.points_label = "one dot per layer".into();
    b
}

fn hist(rng: &mut Rng, bimodal: bool, spread: f64) -> Histogram {
    let bins = 200;
    let mut counts = vec![0u64; bins];
    for _ in 0..20_000 {
        let mut v = rng.normal() * spread;
        if bimodal {
            v += if rng.next() < 0.5 { -0.45 } else { 0.45 };
        }
        let i = ((v + 1.0) / 2.0 * bins as f64).floor();
        if (0.0..bins as f64).contains(&i) {
            counts[i as usize] += 1;
        }
    }
    Histogram::new(-1.0, 1.0, counts)
}

fn delta_histograms(log_y: bool) -> HistogramGrid {
    let mut rng = Rng(3);
    let layers = [0usize, 7, 14, 21, 27];
    let cells = layers
        .iter()
        .map(|&l| {
            MODULES
                .iter()
                .enumerate()
                .map(|(m, _)| {
                    let bimodal = m == 3 && l >= 7;
                    let h = if m == 8 && l == 27 {
                        Histogram::default()
                    } else {
                        hist(&mut rng, bimodal, 0.08 + 0.02 * (m % 3) as f64)
                    };
                    HistogramCell { histogram: h, flag: bimodal.then(|| "bimodal".to_string()) }
                })
                .collect()
        })
        .collect();
    let mut g = HistogramGrid::new(
        "Distribution of normalised weight deltas",
        layers.iter().map(|l| format!("layer {l}")).collect(),
        strings(MODULES),
        cells,
    );
    g.x_label = "ΔW / max|ΔW|".into();
    g.log_y = log_y;
    g
}

fn loss_curves() -> LineChart {
    let mut rng = Rng(5);
    let series = ["full fine-tune", "o_proj only", "mlp only"]
        .iter()
        .enumerate()
        .map(|(i, name)| {
            let pts = (0..400)
                .map(|s| {
                    let s = s as f64;
                    (s, 0.4 + 2.2 * (-(s / (60.0 + 40.0 * i as f64))).exp() + 0.04 * rng.normal())
                })
                .collect();
            Series::new(*name, pts)
        })
        .collect();
    LineChart::new("Training loss", "step", "loss", series)
}

struct Png {
    width: u32,
    height: u32,
    colors: usize,
}

fn read_png(path: &Path) -> Png {
    let mut reader = png::Decoder::new(BufReader::new(File::open(path).unwrap())).read_info().unwrap();
    let mut buf = vec![0u8; reader.output_buffer_size().unwrap()];
    let info = reader.next_frame(&mut buf).unwrap();
    let bpp = info.color_type.samples();
    let colors: HashSet<&[u8]> = buf[..info.buffer_size()].chunks(bpp).collect();
    Png { width: info.width, height: info.height, colors: colors.len() }
}

/// Renders `fig`, checks both files, returns the SVG text for figure-specific checks.
fn render_and_check(fig: &impl Figure, name: &str, must_contain: &[&str]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let stem = dir.path().join(name);
    let paths = save(fig, &stem).unwrap();
    assert_eq!(paths, vec![dir.path().join(format!("{name}.svg")), dir.path().join(format!("{name}.png"))]);

    let svg = std::fs::read_to_string(&paths[0]).unwrap();
    let doc = roxmltree::Document::parse(&svg).expect("SVG must be well-formed XML");
    assert_eq!(doc.root_element().tag_name().name(), "svg");
    let w: f64 = doc.root_element().attribute("width").unwrap().parse().unwrap();
    let h: f64 = doc.root_element().attribute("height").unwrap().parse().unwrap();
    let texts: String =
        doc.descendants().filter(|n| n.has_tag_name("text")).filter_map(|n| n.text()).collect::<Vec<_>>().join("\n");
    for s in must_contain {
        assert!(texts.contains(s), "{name}: SVG text lacks {s:?}");
    }

    let png = read_png(&paths[1]);
    assert_eq!(
        (png.width, png.height),
        ((w * 2.0).ceil() as u32, (h * 2.0).ceil() as u32),
        "{name}: PNG is SVG size x2"
    );
    assert!(png.colors >= 8, "{name}: PNG looks blank ({} distinct colours)", png.colors);

    // No temp files left behind.
    let leftovers: Vec<_> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(leftovers.len(), 2, "{leftovers:?}");

    if let Ok(samples) = std::env::var("SFN_REPORT_SAMPLES") {
        std::fs::create_dir_all(&samples).unwrap();
        save(fig, &PathBuf::from(samples).join(name)).unwrap();
    }
    svg
}

#[test]
fn heatmap_renders_28_layers_with_labels() {
    render_and_check(
        &delta_heatmap(28, false),
        "heatmap_28",
        &["Relative weight change", "q_proj", "post_attn_norm", "27", "layer", "module"],
    );
}

#[test]
fn heatmap_renders_80_layers_on_log_scale() {
    let svg = render_and_check(&delta_heatmap(80, true), "heatmap_80_log", &["Relative weight change", "0.01", "0.05"]);
    // Row labels are thinned out on tall heatmaps instead of overlapping.
    assert!(!svg.contains(">79</text>"));
}

#[test]
fn figures_get_distinct_svg_ids_so_they_can_share_an_html_page() {
    let id = |h: &Heatmap| {
        let svg = h.to_svg().unwrap().text;
        let at = svg.find("cbar\"").unwrap();
        svg[svg[..at].rfind('"').unwrap() + 1..at].to_string()
    };
    let (a, b) = (id(&delta_heatmap(4, false)), id(&delta_heatmap(5, false)));
    assert_ne!(a, b);
    assert_eq!(a, id(&delta_heatmap(4, false)), "ids are deterministic");
}

#[test]
fn heatmap_with_missing_cells_is_hatched_not_a_panic() {
    let mut h = delta_heatmap(6, true);
    h.values[0][0] = f64::NAN;
    h.values[1][2] = -1.0; // not drawable on a log scale
    h.values[2] = vec![f64::NAN; MODULES.len()];
    h.annotate = true;
    let svg = render_and_check(&h, "heatmap_missing", &["missing / ≤ 0"]);
    assert!(svg.contains("-missing)"), "missing cells use the hatch pattern");
}

#[test]
fn heatmap_all_missing_still_renders() {
    let h = Heatmap::new("all missing", strings(["0", "1"]), strings(["a", "b"]), vec![vec![f64::NAN; 2]; 2]);
    render_and_check(&h, "heatmap_all_nan", &["all missing", "missing"]);
}

#[test]
fn heatmap_rejects_ragged_values_with_a_clear_error() {
    let h = Heatmap::new("ragged", strings(["0", "1"]), strings(["a", "b"]), vec![vec![1.0, 2.0], vec![1.0]]);
    let err = h.to_svg().unwrap_err().to_string();
    assert!(err.contains("ragged") && err.contains("row 1 has 1 values"), "{err}");
    let h = Heatmap::new("few labels", strings(["0"]), strings(["a"]), vec![vec![1.0], vec![2.0]]);
    assert!(matches!(h.to_svg(), Err(ReportError::InvalidFigure { .. })));
}

#[test]
fn bar_chart_renders_with_whiskers_dots_and_values() {
    render_and_check(
        &delta_bars(),
        "bars",
        &["Mean relative change", "o_proj", "0.08", "relative change", "one dot per layer"],
    );
}

#[test]
fn bar_chart_handles_negative_and_missing_values() {
    let bars = vec![Bar::new("gain", 0.12), Bar::new("loss", -0.3), Bar::new("unknown", f64::NAN)];
    let chart = BarChart::new("Accuracy change after merge", "Δ accuracy", bars);
    render_and_check(&chart, "bars_signed", &["−0.3", "n/a", "unknown"]);
}

#[test]
fn histogram_grid_renders_with_flags_and_empty_cells() {
    let svg = render_and_check(
        &delta_histograms(false),
        "histograms",
        &["layer 27", "q_proj", "−1", "0", "1", "bimodal", "no data"],
    );
    assert!(svg.contains(r##"stroke="#e15759""##), "flagged cells get a coloured frame");
}

#[test]
fn histogram_grid_log_scale_and_degenerate_histograms() {
    let mut g = delta_histograms(true);
    g.cells[0][0].histogram = Histogram::new(0.5, 0.5, vec![10]); // every value equal
    g.cells[0][1].histogram = Histogram::new(0.0, 1.0, vec![0, 0, 0]); // all-zero counts
    g.cells[0][2].histogram = Histogram::new(-3.0, 3.0, vec![1, 5, 1]); // wider than the axis
    render_and_check(&g, "histograms_log", &["log(1 + count)"]);
    g.cells[1][1].histogram = Histogram::new(f64::NAN, 1.0, vec![1]);
    let err = g.to_svg().unwrap_err().to_string();
    assert!(err.contains("layer 7") && err.contains("k_proj"), "{err}");
}

#[test]
fn line_chart_renders_series_and_legend() {
    render_and_check(&loss_curves(), "loss", &["Training loss", "step", "loss", "o_proj only"]);
}

#[test]
fn line_chart_breaks_at_gaps_and_supports_log_y() {
    let mut pts: Vec<(f64, f64)> = (0..28).map(|l| (l as f64, 0.2 + 0.6 * (l as f64 / 27.0).powi(2))).collect();
    pts[10].1 = f64::NAN;
    let mut chart = LineChart::new("Probe accuracy by layer", "layer", "accuracy", vec![Series::new("A", pts.clone())]);
    chart.series.push(Series { dashed: true, ..Series::new("B", pts.iter().map(|(x, y)| (*x, y * 1.2)).collect()) });
    chart.y_range = Some((0.0, 1.0));
    let svg = render_and_check(&chart, "accuracy", &["Probe accuracy", "0.4", "B"]);
    assert_broken_once(&svg);
    chart.log_y = true;
    chart.y_range = None;
    let svg = render_and_check(&chart, "accuracy_log", &["Probe accuracy"]);
    assert_broken_once(&svg);
}

/// Each of the two series is drawn as one path that lifts the pen once, at the missing layer 10:
/// a move to layer 0 and 9 lines to layer 9, then a move to layer 11 and 16 lines to layer 27.
fn assert_broken_once(svg: &str) {
    let doc = roxmltree::Document::parse(svg).unwrap();
    let lines: Vec<&str> = doc
        .descendants()
        .filter(|n| n.has_tag_name("path") && n.attribute("fill") == Some("none"))
        .filter_map(|n| n.attribute("d"))
        .collect();
    assert_eq!(lines.len(), 2, "one line per series");
    for d in lines {
        let moves = d.matches('M').count();
        let segments = d.matches('L').count();
        assert_eq!((moves, segments), (2, 9 + 16), "the line must break at the gap: {d}");
        let second_move = &d[d.rfind('M').unwrap()..];
        assert_eq!(second_move.matches('L').count(), 16, "{d}");
    }
}

#[test]
fn empty_figures_are_errors_not_panics() {
    assert!(BarChart::new("none", "y", vec![]).to_svg().is_err());
    assert!(LineChart::new("none", "x", "y", vec![]).to_svg().is_err());
    assert!(Heatmap::new("none", vec![], vec![], vec![]).to_svg().is_err());
    assert!(HistogramGrid::new("none", vec![], vec![], vec![]).to_svg().is_err());
    // A series with no usable point still draws axes.
    let chart = LineChart::new("no points", "x", "y", vec![Series::new("nan", vec![(f64::NAN, 1.0)])]);
    render_and_check(&chart, "line_empty", &["no points"]);
}

#[test]
fn saving_into_missing_directory_is_a_clear_error_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let stem = dir.path().join("no/such/dir/fig");
    let err = save(&delta_bars(), &stem).unwrap_err();
    assert!(matches!(err, ReportError::MissingDir { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(msg.contains("does not exist") && msg.contains("no/such/dir"), "{msg}");
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
}

#[test]
fn save_replaces_existing_files_and_keeps_dots_in_stem() {
    let dir = tempfile::tempdir().unwrap();
    let stem = dir.path().join("fig.v2");
    std::fs::write(dir.path().join("fig.v2.svg"), "old").unwrap();
    let paths = save_with(&delta_bars(), &stem, &SaveOptions { png_scale: 1.0 }).unwrap();
    assert!(paths[0].ends_with("fig.v2.svg") && paths[1].ends_with("fig.v2.png"));
    assert!(std::fs::read_to_string(&paths[0]).unwrap().starts_with("<?xml"));
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 2);
    assert!(matches!(save(&delta_bars(), Path::new("/")), Err(ReportError::BadStem { .. })));
}

#[test]
fn text_is_rasterised_from_the_embedded_font() {
    // Only text on a white page: if no font were available, the PNG would be plain white.
    let doc = SvgDocument {
        width: 120,
        height: 30,
        text: r#"<svg xmlns="http://www.w3.org/2000/svg" width="120" height="30"><text x="4" y="22" font-family="sans-serif" font-size="18">Layer 12</text></svg>"#.into(),
    };
    let png = doc.to_png(1.0).unwrap();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("t.png"), png).unwrap();
    assert!(read_png(&dir.path().join("t.png")).colors > 4);
}

#[test]
fn hostile_labels_are_escaped() {
    let h = Heatmap::new("a <b> & \"c\"\u{7}", strings(["<0>"]), strings(["&"]), vec![vec![1.0]]);
    render_and_check(&h, "escaped", &["a <b> & \"c\"", "<0>", "&"]);
}
