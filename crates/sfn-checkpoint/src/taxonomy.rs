//! The tensor-name taxonomy: what a canonical (Hugging Face) tensor name means — which layer, which
//! module kind, which parameter. This is the only place in sfn that looks inside tensor names;
//! everything else asks `parse_name`.
//!
//! Understands the Llama / Qwen2 / Mistral / Qwen3 layout, with or without the leading `model.`:
//! `model.embed_tokens.weight`, `model.layers.N.self_attn.{q,k,v,o}_proj.{weight,bias}`,
//! `model.layers.N.self_attn.{q_norm,k_norm}.weight`, `model.layers.N.mlp.{gate,up,down}_proj.weight`,
//! `model.layers.N.{input_layernorm,post_attention_layernorm}.weight`, `model.norm.weight`,
//! `lm_head.weight`. Limits: any other name (rotary `inv_freq`, Gemma's extra norms, LoRA adapters,
//! `rope_freqs.weight`, …) is `ModuleKind::Other` — never an error — with its layer still read when
//! the name contains `layers.N.`. GGUF names are mapped to these before they get here (`crate::gguf`).

use std::fmt;

/// What one tensor name means.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TensorName {
    /// Decoder layer index, for names containing `layers.N.`; None for embed, final norm, lm_head.
    pub layer: Option<usize>,
    pub module: ModuleKind,
    pub param: Param,
}

/// The module a tensor belongs to. Ordered as a block is read top to bottom, which is the order
/// tables list them in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ModuleKind {
    Embed,
    Q,
    K,
    V,
    O,
    Gate,
    Up,
    Down,
    InputNorm,
    PostAttnNorm,
    QNorm,
    KNorm,
    FinalNorm,
    LmHead,
    /// Anything the taxonomy does not know (kept, listed, selectable only by `re:` or `all`).
    Other,
}

impl ModuleKind {
    /// Every known kind in display order, without `Other` (tables append "other" themselves).
    pub const ALL: [ModuleKind; 14] = [
        ModuleKind::Embed,
        ModuleKind::Q,
        ModuleKind::K,
        ModuleKind::V,
        ModuleKind::O,
        ModuleKind::Gate,
        ModuleKind::Up,
        ModuleKind::Down,
        ModuleKind::InputNorm,
        ModuleKind::PostAttnNorm,
        ModuleKind::QNorm,
        ModuleKind::KNorm,
        ModuleKind::FinalNorm,
        ModuleKind::LmHead,
    ];

    /// The name shown in tables and written in selectors.
    pub fn name(self) -> &'static str {
        match self {
            ModuleKind::Embed => "embed",
            ModuleKind::Q => "q_proj",
            ModuleKind::K => "k_proj",
            ModuleKind::V => "v_proj",
            ModuleKind::O => "o_proj",
            ModuleKind::Gate => "gate_proj",
            ModuleKind::Up => "up_proj",
            ModuleKind::Down => "down_proj",
            ModuleKind::InputNorm => "input_norm",
            ModuleKind::PostAttnNorm => "post_attn_norm",
            ModuleKind::QNorm => "q_norm",
            ModuleKind::KNorm => "k_norm",
            ModuleKind::FinalNorm => "final_norm",
            ModuleKind::LmHead => "lm_head",
            ModuleKind::Other => "other",
        }
    }

    /// The kind whose `name()` is `name` (not "other", which names no module one could ask for).
    pub fn from_name(name: &str) -> Option<ModuleKind> {
        ModuleKind::ALL.into_iter().find(|m| m.name() == name)
    }

    /// RMS norms: the two per block, the optional per-head q/k norms and the final one.
    pub fn is_norm(self) -> bool {
        matches!(
            self,
            ModuleKind::InputNorm
                | ModuleKind::PostAttnNorm
                | ModuleKind::QNorm
                | ModuleKind::KNorm
                | ModuleKind::FinalNorm
        )
    }

    /// Everything inside `self_attn`: the four projections and the q/k norms.
    pub fn is_attention(self) -> bool {
        matches!(
            self,
            ModuleKind::Q | ModuleKind::K | ModuleKind::V | ModuleKind::O | ModuleKind::QNorm | ModuleKind::KNorm
        )
    }

    /// The q, k and v projections (not o, not the norms).
    pub fn is_qkv(self) -> bool {
        matches!(self, ModuleKind::Q | ModuleKind::K | ModuleKind::V)
    }

    /// Everything inside `mlp`.
    pub fn is_mlp(self) -> bool {
        matches!(self, ModuleKind::Gate | ModuleKind::Up | ModuleKind::Down)
    }
}

impl fmt::Display for ModuleKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The last component of a name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Param {
    Weight,
    Bias,
    /// E.g. `inv_freq`, or a quantizer's `weight_scale` next to a known module.
    Other,
}

impl Param {
    pub fn name(self) -> &'static str {
        match self {
            Param::Weight => "weight",
            Param::Bias => "bias",
            Param::Other => "other",
        }
    }

    fn parse(s: &str) -> Param {
        match s {
            "weight" => Param::Weight,
            "bias" => Param::Bias,
            _ => Param::Other,
        }
    }
}

impl fmt::Display for Param {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Read a canonical tensor name. Never fails: names outside the taxonomy are `ModuleKind::Other`
/// (with their layer, if any) so that callers can carry them through untouched.
pub fn parse_name(name: &str) -> TensorName {
    let rest = name.strip_prefix("model.").unwrap_or(name);
    let segs: Vec<&str> = rest.split('.').collect();
    let layer = find_layer(&segs);
    let known = |module, param: &str| TensorName { layer, module, param: Param::parse(param) };
    // Exact shapes only: a known module followed by anything deeper than one component (e.g. a LoRA
    // adapter's `q_proj.lora_A.weight`) is not that module's parameter, so it stays Other.
    match segs.as_slice() {
        ["embed_tokens", p] => known(ModuleKind::Embed, p),
        ["norm", p] => known(ModuleKind::FinalNorm, p),
        ["lm_head", p] => known(ModuleKind::LmHead, p),
        ["layers", n, rest @ ..] if layer.is_some() && is_index(n) => {
            let module = match rest {
                ["self_attn", "q_proj", _] => ModuleKind::Q,
                ["self_attn", "k_proj", _] => ModuleKind::K,
                ["self_attn", "v_proj", _] => ModuleKind::V,
                ["self_attn", "o_proj", _] => ModuleKind::O,
                ["self_attn", "q_norm", _] => ModuleKind::QNorm,
                ["self_attn", "k_norm", _] => ModuleKind::KNorm,
                ["mlp", "gate_proj", _] => ModuleKind::Gate,
                ["mlp", "up_proj", _] => ModuleKind::Up,
                ["mlp", "down_proj", _] => ModuleKind::Down,
                ["input_layernorm", _] => ModuleKind::InputNorm,
                ["post_attention_layernorm", _] => ModuleKind::PostAttnNorm,
                _ => return TensorName { layer, module: ModuleKind::Other, param: other_param(&segs) },
            };
            known(module, rest[rest.len() - 1])
        }
        _ => TensorName { layer, module: ModuleKind::Other, param: other_param(&segs) },
    }
}

/// The parameter of an unknown name is still read from its last component, so `.bias` filters
/// keep working on names the taxonomy does not otherwise understand.
fn other_param(segs: &[&str]) -> Param {
    if segs.len() < 2 {
        return Param::Other;
    }
    segs.last().map_or(Param::Other, |p| Param::parse(p))
}

/// `layers.N` anywhere in the name (the first occurrence), so that unknown per-layer tensors still
/// count towards their layer.
fn find_layer(segs: &[&str]) -> Option<usize> {
    segs.windows(2).find(|w| w[0] == "layers" && is_index(w[1])).and_then(|w| w[1].parse().ok())
}

/// Plain decimal digits only: `usize::from_str` would also take `+3`, which is not an index.
fn is_index(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tn(layer: Option<usize>, module: ModuleKind, param: Param) -> TensorName {
        TensorName { layer, module, param }
    }

    #[test]
    fn taxonomy_reads_every_canonical_name() {
        use ModuleKind::*;
        let cases = [
            ("model.embed_tokens.weight", tn(None, Embed, Param::Weight)),
            ("model.layers.0.self_attn.q_proj.weight", tn(Some(0), Q, Param::Weight)),
            ("model.layers.1.self_attn.q_proj.bias", tn(Some(1), Q, Param::Bias)),
            ("model.layers.2.self_attn.k_proj.weight", tn(Some(2), K, Param::Weight)),
            ("model.layers.3.self_attn.k_proj.bias", tn(Some(3), K, Param::Bias)),
            ("model.layers.4.self_attn.v_proj.weight", tn(Some(4), V, Param::Weight)),
            ("model.layers.5.self_attn.v_proj.bias", tn(Some(5), V, Param::Bias)),
            ("model.layers.12.self_attn.o_proj.weight", tn(Some(12), O, Param::Weight)),
            ("model.layers.7.self_attn.q_norm.weight", tn(Some(7), QNorm, Param::Weight)),
            ("model.layers.7.self_attn.k_norm.weight", tn(Some(7), KNorm, Param::Weight)),
            ("model.layers.8.mlp.gate_proj.weight", tn(Some(8), Gate, Param::Weight)),
            ("model.layers.8.mlp.up_proj.weight", tn(Some(8), Up, Param::Weight)),
            ("model.layers.8.mlp.down_proj.weight", tn(Some(8), Down, Param::Weight)),
            ("model.layers.29.input_layernorm.weight", tn(Some(29), InputNorm, Param::Weight)),
            ("model.layers.29.post_attention_layernorm.weight", tn(Some(29), PostAttnNorm, Param::Weight)),
            ("model.norm.weight", tn(None, FinalNorm, Param::Weight)),
            ("lm_head.weight", tn(None, LmHead, Param::Weight)),
        ];
        for (name, want) in cases {
            assert_eq!(parse_name(name), want, "{name}");
        }
    }

    #[test]
    fn taxonomy_accepts_names_without_model_prefix() {
        assert_eq!(parse_name("embed_tokens.weight"), tn(None, ModuleKind::Embed, Param::Weight));
        assert_eq!(parse_name("layers.3.self_attn.o_proj.weight"), tn(Some(3), ModuleKind::O, Param::Weight));
        assert_eq!(parse_name("layers.3.mlp.down_proj.weight"), tn(Some(3), ModuleKind::Down, Param::Weight));
        assert_eq!(parse_name("norm.weight"), tn(None, ModuleKind::FinalNorm, Param::Weight));
        assert_eq!(parse_name("model.lm_head.weight"), tn(None, ModuleKind::LmHead, Param::Weight));
    }

    #[test]
    fn taxonomy_unknown_names_are_other_with_their_layer() {
        let cases = [
            ("model.layers.4.self_attn.rotary_emb.inv_freq", Some(4), Param::Other),
            ("model.layers.2.pre_feedforward_layernorm.weight", Some(2), Param::Weight),
            ("model.layers.2.post_feedforward_layernorm.weight", Some(2), Param::Weight),
            ("rope_freqs.weight", None, Param::Weight),
            ("model.layers.1.self_attn.q_proj.lora_A.weight", Some(1), Param::Weight),
            ("model.layers.x.self_attn.q_proj.weight", None, Param::Weight),
            ("model.layers.+3.self_attn.q_proj.weight", None, Param::Weight),
            ("model.layers.3", Some(3), Param::Other),
            ("model.embed_tokens", None, Param::Other),
            ("", None, Param::Other),
            ("weight", None, Param::Other),
            ("...", None, Param::Other),
        ];
        for (name, layer, param) in cases {
            assert_eq!(parse_name(name), tn(layer, ModuleKind::Other, param), "{name:?}");
        }
    }

    #[test]
    fn taxonomy_known_module_with_unusual_param_keeps_the_module() {
        let n = parse_name("model.layers.6.self_attn.o_proj.weight_scale");
        assert_eq!(n, tn(Some(6), ModuleKind::O, Param::Other));
        assert_eq!(parse_name("model.norm.bias"), tn(None, ModuleKind::FinalNorm, Param::Bias));
    }

    #[test]
    fn taxonomy_module_names_round_trip_and_groups_are_consistent() {
        for m in ModuleKind::ALL {
            assert_eq!(ModuleKind::from_name(m.name()), Some(m));
            assert_eq!(m.to_string(), m.name());
        }
        assert_eq!(ModuleKind::from_name("other"), None);
        assert!(!ModuleKind::ALL.contains(&ModuleKind::Other));
        let norms: Vec<_> = ModuleKind::ALL.into_iter().filter(|m| m.is_norm()).map(|m| m.name()).collect();
        assert_eq!(norms, ["input_norm", "post_attn_norm", "q_norm", "k_norm", "final_norm"]);
        let attn: Vec<_> = ModuleKind::ALL.into_iter().filter(|m| m.is_attention()).map(|m| m.name()).collect();
        assert_eq!(attn, ["q_proj", "k_proj", "v_proj", "o_proj", "q_norm", "k_norm"]);
        let mlp: Vec<_> = ModuleKind::ALL.into_iter().filter(|m| m.is_mlp()).map(|m| m.name()).collect();
        assert_eq!(mlp, ["gate_proj", "up_proj", "down_proj"]);
        assert!(!ModuleKind::Other.is_norm() && !ModuleKind::Other.is_attention() && !ModuleKind::Other.is_mlp());
    }
}
