//! `sfn probe MODEL [B]`: where the residual stream grows and where A and B part. Per layer, the
//! L2 norm of `resid_post` (the layer's output), `attn_out` (o_proj's output) and `mlp_out` at
//! each position, averaged over positions, then over prompts (each prompt weighs the same); with
//! B, B's norms on the same tokens and the cosine similarity of A's and B's activation at each
//! site and position, averaged likewise. The paper's own scripts plot these norms.
//!
//! Writes probe.json (`layers` averaged, `per_prompt` for each prompt) and line figures: each
//! site's norm per layer (A and B overlaid) and, with B, the A–B cosine per layer.

use crate::error::{Error, Result};
use crate::figure;
use crate::inputs::{Inputs, Sequence};
use serde::{Deserialize, Serialize};
use sfn_checkpoint::Checkpoint;
use sfn_model::{HookId, HookPoint, Hooks, Model, RuntimeSpec, Tokenizer};
use sfn_run::{Context, Provenance, RunDir};
use std::path::{Path, PathBuf};

/// The probed sites, in the order of probe.json's keys.
pub const SITES: [HookPoint; 3] = [HookPoint::ResidPost, HookPoint::AttnOut, HookPoint::MlpOut];

pub const JSON_FILE: &str = "probe.json";

/// `sfn probe MODEL [B] (--prompts FILE | --task FILE | --ids 1,2,3) -o DIR`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "cli", derive(clap::Args))]
#[serde(deny_unknown_fields)]
pub struct ProbeSpec {
    /// The model (A): checkpoint directory, .safetensors or .gguf.
    pub model: PathBuf,
    /// A second model of the same architecture (B), run on A's tokens.
    #[serde(default)]
    pub b: Option<PathBuf>,
    #[cfg_attr(feature = "cli", command(flatten))]
    pub inputs: Inputs,
    #[cfg_attr(feature = "cli", command(flatten))]
    #[serde(default)]
    pub runtime: RuntimeSpec,
}

/// One layer's values: A's norms, and with B, B's norms and the A–B cosines.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LayerProbe {
    pub layer: usize,
    pub resid_post_norm: f64,
    pub attn_out_norm: f64,
    pub mlp_out_norm: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub b_resid_post_norm: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub b_attn_out_norm: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub b_mlp_out_norm: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cos_resid_post: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cos_attn_out: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cos_mlp_out: Option<f64>,
}

/// One prompt's values.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PromptProbe {
    pub id: String,
    pub tokens: usize,
    pub layers: Vec<LayerProbe>,
}

/// probe.json.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ProbeReport {
    pub provenance: Provenance,
    pub prompts: usize,
    pub tokens: usize,
    pub layers: Vec<LayerProbe>,
    pub per_prompt: Vec<PromptProbe>,
}

impl ProbeReport {
    pub fn read(dir: &Path) -> Result<ProbeReport> {
        Ok(sfn_run::rundir::read_json(&dir.join(JSON_FILE))?)
    }
}

/// Run `sfn probe` as `spec` says into the run directory `out`.
pub fn run(spec: &ProbeSpec, out: &Path, ctx: &Context) -> Result<ProbeReport> {
    spec.runtime.init()?;
    let a = Checkpoint::open(&spec.model).map_err(|e| Error::Side("A", Box::new(e.into())))?;
    let b = match &spec.b {
        Some(p) => Some(Checkpoint::open(p).map_err(|e| Error::Side("B", Box::new(e.into())))?),
        None => None,
    };
    let mut inputs = vec![a.input("A")?];
    if let Some(b) = &b {
        inputs.push(b.input("B")?);
    }
    for (role, path) in spec.inputs.files() {
        inputs.push(sfn_run::Input::file(role, path)?);
    }
    let spec_json = serde_json::to_value(spec).expect("plain data");
    let provenance = Provenance::new(ctx.command.clone(), spec_json, inputs, None);
    let run = RunDir::create(out, "probe", provenance)?;
    let (report, _) = run.finish_with(|run| -> Result<ProbeReport> {
        let model_a = spec.runtime.load_model(&a).map_err(|e| Error::Side("A", Box::new(e.into())))?;
        let tokenizer = Tokenizer::for_source(&a).ok();
        let sequences = spec.inputs.sequences(&model_a, tokenizer.as_ref())?;
        let model_b = match &b {
            Some(b) => {
                let m = spec.runtime.load_model(b).map_err(|e| Error::Side("B", Box::new(e.into())))?;
                same_shape(&model_a, &m)?;
                Some(m)
            }
            None => None,
        };
        let layers = model_a.config.num_layers;
        ctx.progress.stage("probe", sequences.len() as u64, sfn_run::Unit::Items);
        let mut per_prompt = vec![];
        for seq in &sequences {
            per_prompt.push(probe_one(&model_a, model_b.as_ref(), seq, layers)?);
            ctx.progress.advance(1);
        }
        ctx.progress.finish();
        let report = ProbeReport {
            provenance: run.manifest().provenance.clone(),
            prompts: sequences.len(),
            tokens: sequences.iter().map(|s| s.ids.len()).sum(),
            layers: average(&per_prompt, layers),
            per_prompt,
        };
        run.write_json(JSON_FILE, &report)?;
        figures(run, &report.layers)?;
        Ok(report)
    })?;
    Ok(report)
}

/// A and B must have the same layers and hidden size to be compared site by site.
pub(crate) fn same_shape(a: &Model, b: &Model) -> Result<()> {
    let (ca, cb) = (&a.config, &b.config);
    if (ca.num_layers, ca.hidden_size, ca.vocab_size) != (cb.num_layers, cb.hidden_size, cb.vocab_size) {
        return Err(Error::Mismatch(format!(
            "A has {} layers × {} hidden (vocabulary {}), B {} × {} ({}): probe compares models of one architecture",
            ca.num_layers, ca.hidden_size, ca.vocab_size, cb.num_layers, cb.hidden_size, cb.vocab_size
        )));
    }
    Ok(())
}

/// Each site's activation at each layer, [position][hidden], for one sequence.
type Activations = Vec<[Vec<Vec<f32>>; 3]>;

pub(crate) fn activations(model: &Model, ids: &[u32]) -> Result<Activations> {
    let layers = model.config.num_layers;
    let mut hooks = Hooks::new();
    for site in SITES {
        hooks.capture_layers(site, 0..layers);
    }
    model.forward(ids, &mut hooks)?;
    let mut cache = hooks.take_captured()?;
    (0..layers)
        .map(|l| {
            let mut get = |site: HookPoint| -> Result<Vec<Vec<f32>>> {
                let t = cache
                    .remove(&HookId::new(site, l))
                    .ok_or_else(|| Error::Options(format!("{site}.{l} was not captured")))?;
                // The runtime computes activations in f32.
                Ok(t.squeeze(0).and_then(|t| t.to_vec2::<f32>()).map_err(sfn_model::Error::from)?)
            };
            Ok([get(SITES[0])?, get(SITES[1])?, get(SITES[2])?])
        })
        .collect()
}

fn norm(v: &[f32]) -> f64 {
    v.iter().map(|&x| (x as f64) * (x as f64)).sum::<f64>().sqrt()
}

/// Cosine similarity; 1 for two zero vectors (they are the same), 0 for one.
fn cosine(a: &[f32], b: &[f32]) -> f64 {
    let (na, nb) = (norm(a), norm(b));
    match (na == 0.0, nb == 0.0) {
        (true, true) => 1.0,
        (true, false) | (false, true) => 0.0,
        _ => a.iter().zip(b).map(|(&x, &y)| x as f64 * y as f64).sum::<f64>() / (na * nb),
    }
}

fn mean(xs: impl Iterator<Item = f64>) -> f64 {
    let (sum, n) = xs.fold((0.0, 0usize), |(s, n), x| (s + x, n + 1));
    sum / n.max(1) as f64
}

fn probe_one(a: &Model, b: Option<&Model>, seq: &Sequence, layers: usize) -> Result<PromptProbe> {
    let act_a = activations(a, &seq.ids)?;
    let act_b = b.map(|b| activations(b, &seq.ids)).transpose()?;
    let norms = |site: &[Vec<f32>]| mean(site.iter().map(|v| norm(v)));
    let layers = (0..layers)
        .map(|l| {
            let [r, at, m] = &act_a[l];
            let b_site = |i: usize| act_b.as_ref().map(|b| &b[l][i]);
            let cos = |i: usize, x: &[Vec<f32>]| b_site(i).map(|y| mean(x.iter().zip(y).map(|(p, q)| cosine(p, q))));
            LayerProbe {
                layer: l,
                resid_post_norm: norms(r),
                attn_out_norm: norms(at),
                mlp_out_norm: norms(m),
                b_resid_post_norm: b_site(0).map(|v| norms(v)),
                b_attn_out_norm: b_site(1).map(|v| norms(v)),
                b_mlp_out_norm: b_site(2).map(|v| norms(v)),
                cos_resid_post: cos(0, r),
                cos_attn_out: cos(1, at),
                cos_mlp_out: cos(2, m),
            }
        })
        .collect();
    Ok(PromptProbe { id: seq.id.clone(), tokens: seq.ids.len(), layers })
}

/// The per-prompt values averaged over prompts.
fn average(per_prompt: &[PromptProbe], layers: usize) -> Vec<LayerProbe> {
    let avg = |l: usize, f: fn(&LayerProbe) -> f64| mean(per_prompt.iter().map(|p| f(&p.layers[l])));
    let avg_opt = |l: usize, f: fn(&LayerProbe) -> Option<f64>| {
        let vals: Option<Vec<f64>> = per_prompt.iter().map(|p| f(&p.layers[l])).collect();
        vals.map(|v| mean(v.into_iter()))
    };
    (0..layers)
        .map(|l| LayerProbe {
            layer: l,
            resid_post_norm: avg(l, |p| p.resid_post_norm),
            attn_out_norm: avg(l, |p| p.attn_out_norm),
            mlp_out_norm: avg(l, |p| p.mlp_out_norm),
            b_resid_post_norm: avg_opt(l, |p| p.b_resid_post_norm),
            b_attn_out_norm: avg_opt(l, |p| p.b_attn_out_norm),
            b_mlp_out_norm: avg_opt(l, |p| p.b_mlp_out_norm),
            cos_resid_post: avg_opt(l, |p| p.cos_resid_post),
            cos_attn_out: avg_opt(l, |p| p.cos_attn_out),
            cos_mlp_out: avg_opt(l, |p| p.cos_mlp_out),
        })
        .collect()
}

/// probe_norms.{svg,png}: each site's norm per layer (A solid, B beside it); probe_cosine: the
/// A–B cosine per layer and site.
fn figures(run: &mut RunDir, layers: &[LayerProbe]) -> Result<()> {
    let series = |name: &str, f: &dyn Fn(&LayerProbe) -> Option<f64>| {
        let points: Vec<(f64, f64)> = layers.iter().filter_map(|l| f(l).map(|v| (l.layer as f64, v))).collect();
        (!points.is_empty()).then(|| sfn_report::Series::new(name, points))
    };
    let norms = [
        series("A resid_post", &|l| Some(l.resid_post_norm)),
        series("A attn_out", &|l| Some(l.attn_out_norm)),
        series("A mlp_out", &|l| Some(l.mlp_out_norm)),
        series("B resid_post", &|l| l.b_resid_post_norm),
        series("B attn_out", &|l| l.b_attn_out_norm),
        series("B mlp_out", &|l| l.b_mlp_out_norm),
    ];
    let fig = sfn_report::LineChart::new(
        "L2 norm per layer, averaged over positions and prompts",
        "layer",
        "‖activation‖₂",
        norms.into_iter().flatten().collect(),
    );
    figure::save(run, &fig, "probe_norms")?;
    let cos: Vec<_> = [
        series("resid_post", &|l| l.cos_resid_post),
        series("attn_out", &|l| l.cos_attn_out),
        series("mlp_out", &|l| l.cos_mlp_out),
    ]
    .into_iter()
    .flatten()
    .collect();
    if !cos.is_empty() {
        let fig = sfn_report::LineChart::new(
            "Cosine similarity of A's and B's activations per layer",
            "layer",
            "cosine(A, B)",
            cos,
        );
        figure::save(run, &fig, "probe_cosine")?;
    }
    Ok(())
}
