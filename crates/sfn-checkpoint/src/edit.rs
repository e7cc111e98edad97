//! Edit plans: a lazy view over checkpoint A (and B) that yields edited tensors one at a time.
//!
//! Rules pick tensors with the one selector syntax and say what to do with them: take from B,
//! mix (alpha·A + (1−alpha)·B), zero, re-initialise from N(mean, std) with a seed, or scale by k.
//! Whole layers can be removed; later layers are renumbered, as a model without them would name
//! them. Nothing is materialised: `read_f32_into` and `write_tensor` compute the requested piece
//! from the memory-mapped inputs, so a plan over a 70B model needs only chunk-sized memory, and the
//! same view feeds both the checkpoint writer and (later) the runtime.
//!
//! Later rules win where rules overlap. Re-initialisation is counter-based (hash of seed, tensor
//! name and element index), so any chunk can be produced independently and results do not depend
//! on read order or thread count.
//!
//! `merge_plan` and `destroy_plan` are the one way the commands, the sweeps and study files turn
//! (selector, layers, method or alpha) into a plan.

use crate::checkpoint::{natural_cmp, Checkpoint, TensorInfo};
use crate::dtype::{self, DType};
use crate::error::{Error, Result};
use crate::selector::{parse_layer_ranges, Selector};
use crate::taxonomy::parse_name;
use crate::writer::TensorSpec;
use sfn_run::rng::{hash64, hash_str, normal_at};
use std::collections::BTreeSet;
use std::io::Write;

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Edit {
    TakeB,
    /// alpha·A + (1 − alpha)·B.
    Mix {
        alpha: f64,
    },
    Zero,
    /// N(mean, std), seeded.
    Reinit {
        mean: f64,
        std: f64,
        seed: u64,
    },
    Scale {
        factor: f64,
    },
}

impl Edit {
    fn needs_b(&self) -> bool {
        matches!(self, Edit::TakeB | Edit::Mix { .. })
    }
}

/// How the destruction stethoscope damages the selected modules.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Method {
    Zero,
    /// N(mean, std), seeded (the paper: std 0.02).
    Reinit,
    /// Whole layers of the range.
    Remove,
    /// Multiply by a factor.
    Scale,
}

impl Method {
    pub const ALL: [Method; 4] = [Method::Zero, Method::Reinit, Method::Remove, Method::Scale];

    pub fn name(self) -> &'static str {
        match self {
            Method::Zero => "zero",
            Method::Reinit => "reinit",
            Method::Remove => "remove",
            Method::Scale => "scale",
        }
    }
}

impl std::str::FromStr for Method {
    type Err = Error;
    fn from_str(s: &str) -> Result<Method> {
        Method::ALL
            .into_iter()
            .find(|m| m.name() == s.trim())
            .ok_or_else(|| Error::Selector(format!("method `{s}`: choose zero, reinit, remove or scale")))
    }
}

impl std::fmt::Display for Method {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Parameters of the destruction methods that have them.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Damage {
    /// reinit: N(mean, std).
    pub mean: f64,
    pub std: f64,
    /// reinit: seed.
    pub seed: u64,
    /// scale: factor.
    pub factor: Option<f64>,
}

/// The plan of a merge: `take` (a selector) from B, restricted to `layers`, taken whole or mixed
/// as alpha·A + (1 − alpha)·B.
pub fn merge_plan(take: &str, layers: Option<&str>, alpha: Option<f64>) -> Result<EditPlan> {
    let edit = match alpha {
        None => Edit::TakeB,
        Some(alpha) if (0.0..=1.0).contains(&alpha) => Edit::Mix { alpha },
        Some(alpha) => return Err(Error::Selector(format!("alpha {alpha} must lie in [0, 1]"))),
    };
    Ok(EditPlan::single(select_layers(take, layers)?, edit))
}

/// The plan of a destruction: `method` on `select` over `layers`. `remove` drops whole layers and
/// takes no selector (or `all`).
pub fn destroy_plan(method: Method, select: Option<&str>, layers: Option<&str>, damage: Damage) -> Result<EditPlan> {
    if method == Method::Remove {
        if select.is_some_and(|s| s != "all") {
            return Err(Error::Selector(
                "method remove drops whole layers: give no selector (or `all`), only layers".into(),
            ));
        }
        let layers = layers.ok_or_else(|| Error::Selector("method remove needs layers (e.g. 5..30)".into()))?;
        let remove_layers = parse_layer_ranges(layers)?.into_iter().flatten().collect();
        return Ok(EditPlan { rules: vec![], remove_layers });
    }
    let select = select.ok_or_else(|| Error::Selector(format!("method {method} needs a selector (e.g. o_proj)")))?;
    let edit = match method {
        Method::Zero => Edit::Zero,
        Method::Reinit => Edit::Reinit { mean: damage.mean, std: damage.std, seed: damage.seed },
        Method::Scale => {
            Edit::Scale { factor: damage.factor.ok_or_else(|| Error::Selector("method scale needs a factor".into()))? }
        }
        Method::Remove => unreachable!("handled above"),
    };
    Ok(EditPlan::single(select_layers(select, layers)?, edit))
}

/// A selector, with every term restricted to `layers` when given.
fn select_layers(selector: &str, layers: Option<&str>) -> Result<Selector> {
    let sel = Selector::parse(selector)?;
    match layers {
        Some(l) => sel.with_layers(l),
        None => Ok(sel),
    }
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct Rule {
    /// Canonical selector string (parsed again on use).
    pub selector: String,
    #[serde(flatten)]
    pub edit: Edit,
    #[serde(skip)]
    parsed: Selector,
}

impl Rule {
    pub fn new(selector: Selector, edit: Edit) -> Rule {
        Rule { selector: selector.to_string(), edit, parsed: selector }
    }
}

#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct EditPlan {
    pub rules: Vec<Rule>,
    /// Layers to drop entirely (indices in A).
    pub remove_layers: BTreeSet<usize>,
}

impl EditPlan {
    /// One rule: `edit` on what `selector` picks.
    pub fn single(selector: Selector, edit: Edit) -> EditPlan {
        EditPlan { rules: vec![Rule::new(selector, edit)], ..Default::default() }
    }

    /// Every tensor taken from B: B itself, through the same machinery.
    pub fn take_all() -> EditPlan {
        EditPlan::single(Selector::parse("all").expect("`all` parses"), Edit::TakeB)
    }
}

/// What one output tensor is made of.
#[derive(Debug, Clone)]
pub struct PlannedTensor {
    /// Name in the output (renumbered when layers were removed).
    pub name: String,
    /// Name in A (and B).
    pub source: String,
    pub shape: Vec<usize>,
    /// The edit applied, or None for an unchanged copy of A.
    pub edit: Option<Edit>,
}

pub struct EditView<'a> {
    pub a: &'a Checkpoint,
    pub b: Option<&'a Checkpoint>,
    pub plan: EditPlan,
    tensors: Vec<PlannedTensor>,
}

/// Check that B has exactly A's tensor names, shapes (and so architecture); the error lists where
/// they differ (first few of each kind).
pub fn check_same_architecture(a: &Checkpoint, b: &Checkpoint) -> Result<()> {
    let mut problems = Vec::new();
    for t in a.tensors() {
        match b.get(&t.name) {
            None => problems.push(format!("{} is in A but not in B", t.name)),
            Some(u) if u.shape != t.shape => {
                problems.push(format!("{}: shape {:?} in A, {:?} in B", t.name, t.shape, u.shape))
            }
            _ => {}
        }
    }
    for u in b.tensors() {
        if a.get(&u.name).is_none() {
            problems.push(format!("{} is in B but not in A", u.name));
        }
    }
    if let (Some(ca), Some(cb)) = (&a.config, &b.config) {
        if ca.num_layers != cb.num_layers || ca.hidden_size != cb.hidden_size || ca.num_heads != cb.num_heads {
            problems.push(format!(
                "config: A has {} layers/hidden {}/{} heads, B has {}/{}/{}",
                ca.num_layers, ca.hidden_size, ca.num_heads, cb.num_layers, cb.hidden_size, cb.num_heads
            ));
        }
    }
    if problems.is_empty() {
        return Ok(());
    }
    let n = problems.len();
    problems.truncate(8);
    Err(Error::invalid(
        &b.path,
        format!(
            "B does not match A ({}): {} difference(s): {}{}",
            a.path.display(),
            n,
            problems.join("; "),
            if n > 8 { "; …" } else { "" }
        ),
    ))
}

impl<'a> EditView<'a> {
    /// Resolve `plan` against A (and B): every rule must match something, B must match A where
    /// B is needed, removed layers must exist.
    pub fn new(a: &'a Checkpoint, b: Option<&'a Checkpoint>, plan: EditPlan) -> Result<EditView<'a>> {
        let needs_b = plan.rules.iter().any(|r| r.edit.needs_b());
        match b {
            Some(b) => check_same_architecture(a, b)?,
            None if needs_b => return Err(Error::Selector("taking or mixing from B needs a checkpoint B".into())),
            None => {}
        }
        let num_layers =
            a.config.as_ref().map(|c| c.num_layers).unwrap_or_else(|| {
                a.tensors().iter().filter_map(|t| parse_name(&t.name).layer).max().map_or(0, |l| l + 1)
            });
        let names: Vec<&str> = a.tensors().iter().map(|t| t.name.as_str()).collect();
        let mut edits: Vec<Option<Edit>> = vec![None; names.len()];
        for rule in &plan.rules {
            // A range past the last layer is a mistake (a range for another model), not a request
            // to edit the layers that happen to exist.
            let past = rule.parsed.terms().iter().flat_map(|t| t.layers().unwrap_or(&[])).find(|r| r.end > num_layers);
            if let Some(r) = past {
                return Err(Error::Selector(format!(
                    "`{}`: layers {}..{} go past the model's layers 0..{num_layers}",
                    rule.selector, r.start, r.end
                )));
            }
            let chosen: BTreeSet<&str> = rule.parsed.select(names.iter().copied())?.into_iter().collect();
            for (i, n) in names.iter().enumerate() {
                if chosen.contains(n) {
                    edits[i] = Some(rule.edit.clone());
                }
            }
        }
        if let Some(&bad) = plan.remove_layers.iter().find(|&&l| l >= num_layers) {
            return Err(Error::Selector(format!("cannot remove layer {bad}: the model has layers 0..{num_layers}")));
        }
        if plan.remove_layers.len() == num_layers && num_layers > 0 {
            return Err(Error::Selector("removing every layer leaves no model".into()));
        }
        let mut tensors = Vec::new();
        for (t, edit) in a.tensors().iter().zip(edits) {
            let layer = parse_name(&t.name).layer;
            if layer.is_some_and(|l| plan.remove_layers.contains(&l)) {
                continue;
            }
            let name = match layer {
                Some(l) => renumber(&t.name, l, l - plan.remove_layers.range(..l).count()),
                None => t.name.clone(),
            };
            tensors.push(PlannedTensor { name, source: t.name.clone(), shape: t.shape.clone(), edit });
        }
        tensors.sort_by(|x, y| natural_cmp(&x.name, &y.name));
        Ok(EditView { a, b, plan, tensors })
    }

    pub fn tensors(&self) -> &[PlannedTensor] {
        &self.tensors
    }

    pub fn get(&self, name: &str) -> Option<&PlannedTensor> {
        self.tensors.iter().find(|t| t.name == name)
    }

    /// Number of layers of the edited model.
    pub fn num_layers(&self) -> Option<usize> {
        self.a.config.as_ref().map(|c| c.num_layers - self.plan.remove_layers.len())
    }

    /// The dtype a tensor is stored in when written without an explicit one: the source's where
    /// it can be written as-is (B's for a plain take, so take-everything reproduces B), else f32.
    pub fn natural_dtype(&self, t: &PlannedTensor) -> DType {
        let src = match (&t.edit, self.b) {
            (Some(Edit::TakeB), Some(b)) => b.tensor(&t.source).map(|x| x.dtype),
            _ => self.a.tensor(&t.source).map(|x| x.dtype),
        }
        .unwrap_or(DType::F32);
        if src.is_quantized() {
            DType::F32
        } else {
            src
        }
    }

    /// Output specs in output order, each in `dtype` or its natural dtype.
    pub fn specs(&self, dtype: Option<DType>) -> Vec<TensorSpec> {
        self.tensors
            .iter()
            .map(|t| TensorSpec {
                name: t.name.clone(),
                dtype: dtype.unwrap_or_else(|| self.natural_dtype(t)),
                shape: t.shape.clone(),
            })
            .collect()
    }

    fn sources(&self, t: &PlannedTensor) -> Result<(&TensorInfo, Option<&TensorInfo>)> {
        let a = self.a.tensor(&t.source)?;
        let b = match (&t.edit, self.b) {
            (Some(e), Some(b)) if e.needs_b() => Some(b.tensor(&t.source)?),
            _ => None,
        };
        Ok((a, b))
    }

    /// Alignment of chunk starts for `read_f32_into` (see `Checkpoint::granule`).
    pub fn granule(&self, t: &PlannedTensor) -> Result<usize> {
        let (a, b) = self.sources(t)?;
        let ga = self.a.granule(a);
        Ok(match (b, self.b) {
            (Some(b), Some(ck)) => lcm(ga, ck.granule(b)),
            _ => ga,
        })
    }

    /// Elements `start .. start + out.len()` of the edited tensor, as f32.
    pub fn read_f32_into(&self, t: &PlannedTensor, start: usize, out: &mut [f32]) -> Result<()> {
        let (a, b) = self.sources(t)?;
        match &t.edit {
            None => self.a.read_f32_into(a, start, out),
            Some(Edit::TakeB) => self.b.expect("checked in new").read_f32_into(b.expect("needs_b"), start, out),
            Some(Edit::Mix { alpha }) => {
                self.a.read_f32_into(a, start, out)?;
                let mut other = vec![0f32; out.len()];
                self.b.expect("checked in new").read_f32_into(b.expect("needs_b"), start, &mut other)?;
                for (x, y) in out.iter_mut().zip(&other) {
                    *x = (alpha * *x as f64 + (1.0 - alpha) * *y as f64) as f32;
                }
                Ok(())
            }
            Some(Edit::Zero) => {
                out.fill(0.0);
                Ok(())
            }
            Some(Edit::Reinit { mean, std, seed }) => {
                let key = hash64(*seed ^ hash_str(&t.source));
                for (i, x) in out.iter_mut().enumerate() {
                    *x = (mean + std * normal_at(key, (start + i) as u64)) as f32;
                }
                Ok(())
            }
            Some(Edit::Scale { factor }) => {
                self.a.read_f32_into(a, start, out)?;
                out.iter_mut().for_each(|x| *x = (*x as f64 * factor) as f32);
                Ok(())
            }
        }
    }

    /// Stream the edited tensor into `w` as `dtype`. Unchanged copies and plain takes in the
    /// stored dtype are byte copies, so identity plans reproduce their source bit for bit.
    pub fn write_tensor(&self, t: &PlannedTensor, dtype: DType, w: &mut dyn Write) -> Result<()> {
        let (a, b) = self.sources(t)?;
        let (ck, info) = match &t.edit {
            None => (self.a, a),
            Some(Edit::TakeB) => (self.b.expect("checked in new"), b.expect("needs_b")),
            _ => (self.a, a),
        };
        if matches!(t.edit, None | Some(Edit::TakeB)) && info.dtype == dtype && ck.copy_raw(info, w)? {
            return Ok(());
        }
        let io = |e| Error::io(&self.a.path, e);
        let g = self.granule(t)?;
        let n: usize = t.shape.iter().product();
        let step = ((1 << 20) / g).max(1) * g;
        let mut buf = vec![0f32; step.min(n)];
        let mut bytes = Vec::new();
        let mut start = 0;
        while start < n {
            let len = step.min(n - start);
            self.read_f32_into(t, start, &mut buf[..len])?;
            bytes.clear();
            dtype::from_f32(dtype, &buf[..len], &mut bytes);
            w.write_all(&bytes).map_err(io)?;
            start += len;
        }
        Ok(())
    }

    /// A's config.json with the layer count (and per-layer lists such as transformers 5.x's
    /// `layer_types`) adjusted for removed layers.
    pub fn config_json(&self) -> Result<Option<serde_json::Value>> {
        if self.plan.remove_layers.is_empty() {
            return Ok(None);
        }
        let path = self.a.path.join("config.json");
        let mut cfg: serde_json::Value = if path.is_file() {
            let text = std::fs::read_to_string(&path).map_err(|e| Error::io(&path, e))?;
            serde_json::from_str(&text).map_err(|e| Error::invalid(&path, format!("invalid JSON: {e}")))?
        } else {
            match &self.a.config {
                Some(c) => c.to_hf_json(),
                None => return Ok(None),
            }
        };
        let old = cfg["num_hidden_layers"].as_u64().unwrap_or(0) as usize;
        cfg["num_hidden_layers"] = (old - self.plan.remove_layers.len()).into();
        if let Some(obj) = cfg.as_object_mut() {
            for v in obj.values_mut() {
                if let Some(list) = v.as_array_mut().filter(|l| l.len() == old) {
                    let kept: Vec<_> = list
                        .drain(..)
                        .enumerate()
                        .filter(|(i, _)| !self.plan.remove_layers.contains(i))
                        .map(|(_, x)| x)
                        .collect();
                    *list = kept;
                }
            }
        }
        Ok(Some(cfg))
    }
}

/// `model.layers.12.mlp...` -> `model.layers.10.mlp...` (only the layer index component).
fn renumber(name: &str, from: usize, to: usize) -> String {
    let needle = format!("layers.{from}.");
    match name.find(&needle) {
        Some(i) => format!("{}layers.{to}.{}", &name[..i], &name[i + needle.len()..]),
        None => name.to_string(),
    }
}

fn lcm(a: usize, b: usize) -> usize {
    fn gcd(a: usize, b: usize) -> usize {
        if b == 0 {
            a
        } else {
            gcd(b, a % b)
        }
    }
    a / gcd(a, b) * b
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renumbering_touches_only_the_layer_index() {
        assert_eq!(renumber("model.layers.12.mlp.up_proj.weight", 12, 10), "model.layers.10.mlp.up_proj.weight");
        assert_eq!(renumber("model.layers.1.self_attn.o_proj.weight", 1, 0), "model.layers.0.self_attn.o_proj.weight");
    }
}
