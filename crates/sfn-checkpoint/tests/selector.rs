//! The selector grammar of DESIGN.md against a realistic name list: a Qwen2-like model with 4 layers,
//! q/k/v biases, Qwen3-style q/k norms and an untied lm_head (59 tensors), in the order a checkpoint
//! lists them. Every grammar form, the DESIGN.md examples, `--layers`, nothing-matched errors and each
//! parse error are covered; names only, no files.

use sfn_checkpoint::selector::{parse_layer_ranges, Selector};
use sfn_checkpoint::Error;

const LAYERS: usize = 4;

/// Per-layer tensors in the natural-sort order `Checkpoint` lists them.
const BLOCK: [&str; 14] = [
    "input_layernorm.weight",
    "mlp.down_proj.weight",
    "mlp.gate_proj.weight",
    "mlp.up_proj.weight",
    "post_attention_layernorm.weight",
    "self_attn.k_norm.weight",
    "self_attn.k_proj.bias",
    "self_attn.k_proj.weight",
    "self_attn.o_proj.weight",
    "self_attn.q_norm.weight",
    "self_attn.q_proj.bias",
    "self_attn.q_proj.weight",
    "self_attn.v_proj.bias",
    "self_attn.v_proj.weight",
];

fn qwen_names() -> Vec<String> {
    let mut names = vec!["model.embed_tokens.weight".to_string()];
    for l in 0..LAYERS {
        names.extend(BLOCK.iter().map(|t| format!("model.layers.{l}.{t}")));
    }
    names.push("model.norm.weight".into());
    names.push("lm_head.weight".into());
    names
}

fn select(sel: &str, names: &[String]) -> Vec<String> {
    let s = Selector::parse(sel).unwrap_or_else(|e| panic!("{sel}: {e}"));
    s.select(names.iter().map(String::as_str))
        .unwrap_or_else(|e| panic!("{sel}: {e}"))
        .into_iter()
        .map(String::from)
        .collect()
}

fn count(sel: &str) -> usize {
    select(sel, &qwen_names()).len()
}

fn parse_err(sel: &str) -> String {
    match Selector::parse(sel) {
        Err(e @ Error::Selector(_)) => e.to_string(),
        Err(e) => panic!("{sel}: wrong error kind {e:?}"),
        Ok(s) => panic!("{sel}: parsed as `{s}`"),
    }
}

fn select_err(sel: &str, names: &[String]) -> String {
    let s = Selector::parse(sel).unwrap();
    match s.select(names.iter().map(String::as_str)) {
        Err(e @ Error::Selector(_)) => e.to_string(),
        Err(e) => panic!("{sel}: wrong error kind {e:?}"),
        Ok(v) => panic!("{sel}: selected {v:?}"),
    }
}

#[test]
fn name_list_is_what_a_qwen2_checkpoint_holds() {
    assert_eq!(qwen_names().len(), 1 + LAYERS * 14 + 2);
}

#[test]
fn design_example_o_proj_selects_every_layers_o_proj_in_order() {
    let got = select("o_proj", &qwen_names());
    let want: Vec<String> = (0..LAYERS).map(|l| format!("model.layers.{l}.self_attn.o_proj.weight")).collect();
    assert_eq!(got, want);
}

#[test]
fn design_example_o_proj_norms_embed_lm_head_is_a_union_in_input_order() {
    let names = qwen_names();
    let got = select("o_proj,norms,embed,lm_head", &names);
    // o_proj 4 + input/post/q/k norms 4 each + final norm + embed + lm_head
    assert_eq!(got.len(), 4 + 16 + 1 + 1 + 1);
    assert_eq!(got.first().unwrap(), "model.embed_tokens.weight");
    assert_eq!(got.last().unwrap(), "lm_head.weight");
    let mut in_order = got.clone();
    in_order.sort_by_key(|n| names.iter().position(|m| m == n));
    assert_eq!(got, in_order);
}

#[test]
fn design_example_layer_range_mlp_is_half_open() {
    let got = select("layers[1..3].mlp", &qwen_names());
    assert_eq!(got.len(), 2 * 3);
    assert!(
        got.iter().all(|n| n.starts_with("model.layers.1.mlp.") || n.starts_with("model.layers.2.mlp.")),
        "{got:?}"
    );
}

#[test]
fn design_example_layers_5_to_30_mlp_on_a_4_layer_model_matches_nothing() {
    let e = select_err("layers[5..30].mlp", &qwen_names());
    assert!(e.contains("matches no tensor"), "{e}");
    assert!(e.contains("layers 0..4"), "{e}");
}

#[test]
fn design_example_negated_o_proj_starts_from_all() {
    let got = select("!o_proj", &qwen_names());
    assert_eq!(got.len(), 59 - 4);
    assert!(!got.iter().any(|n| n.contains("o_proj")));
    assert!(got.contains(&"model.embed_tokens.weight".to_string()));
}

#[test]
fn design_example_regex_on_bias() {
    let got = select(r"re:.*\.bias$", &qwen_names());
    assert_eq!(got.len(), LAYERS * 3);
    assert!(got.iter().all(|n| n.ends_with(".bias")));
}

#[test]
fn inclusive_range_includes_its_end() {
    assert_eq!(count("layers[0..=1].o_proj"), 2);
    assert_eq!(count("layers[3..=3].o_proj"), 1);
}

#[test]
fn single_layer_and_multiple_ranges() {
    assert_eq!(count("layers[2].o_proj"), 1);
    let got = select("layers[0,2..4].q_proj", &qwen_names());
    let layers: Vec<&str> = got.iter().map(|n| n.split('.').nth(2).unwrap()).collect();
    assert_eq!(layers, ["0", "0", "2", "2", "3", "3"], "weight and bias of q in layers 0, 2, 3");
    assert_eq!(count("layers[0..1, 1..=2 ,3].o"), 4);
}

#[test]
fn aliases_mean_the_full_module_names() {
    let names = qwen_names();
    for (alias, full) in [
        ("q", "q_proj"),
        ("k", "k_proj"),
        ("v", "v_proj"),
        ("o", "o_proj"),
        ("gate", "gate_proj"),
        ("up", "up_proj"),
        ("down", "down_proj"),
    ] {
        assert_eq!(select(alias, &names), select(full, &names), "{alias}");
        assert_eq!(Selector::parse(alias).unwrap().to_string(), full);
    }
}

#[test]
fn every_module_name_selects_its_tensors() {
    let per_layer = [
        ("q_proj", 2),
        ("k_proj", 2),
        ("v_proj", 2),
        ("o_proj", 1),
        ("gate_proj", 1),
        ("up_proj", 1),
        ("down_proj", 1),
        ("input_norm", 1),
        ("post_attn_norm", 1),
        ("q_norm", 1),
        ("k_norm", 1),
    ];
    for (m, n) in per_layer {
        assert_eq!(count(m), n * LAYERS, "{m}");
    }
    assert_eq!(select("embed", &qwen_names()), ["model.embed_tokens.weight"]);
    assert_eq!(select("final_norm", &qwen_names()), ["model.norm.weight"]);
    assert_eq!(select("lm_head", &qwen_names()), ["lm_head.weight"]);
}

#[test]
fn groups_attn_qkv_mlp_norms_all() {
    assert_eq!(count("attn"), LAYERS * (7 + 2), "q,k,v with bias, o, q/k norms");
    assert_eq!(count("qkv"), LAYERS * 6);
    assert_eq!(count("mlp"), LAYERS * 3);
    assert_eq!(count("norms"), LAYERS * 4 + 1);
    assert_eq!(count("all"), 59);
}

#[test]
fn weight_and_bias_suffixes_filter_the_parameter() {
    assert_eq!(count("q.bias"), LAYERS);
    assert_eq!(count("q_proj.weight"), LAYERS);
    assert_eq!(count("attn.bias"), LAYERS * 3);
    assert_eq!(count("all.bias"), LAYERS * 3);
    assert_eq!(count("layers[1].qkv.weight"), 3);
    assert!(select_err("norms.bias", &qwen_names()).contains("matches no tensor"));
}

#[test]
fn negative_only_selectors_start_from_all_and_remove_each_term() {
    assert_eq!(count("!o_proj,!norms"), 59 - 4 - 17);
    assert_eq!(count("!layers[0..2].all"), 59 - 2 * 14);
    assert_eq!(count(r"!re:.*\.bias"), 59 - 12);
}

#[test]
fn negative_terms_subtract_from_the_positive_union() {
    assert_eq!(count("attn,!q_norm,!k_norm"), LAYERS * 7);
    assert_eq!(count("mlp,!layers[0].mlp"), 3 * 3);
    assert_eq!(count("!q_norm, attn ,!k_norm"), LAYERS * 7, "order of terms does not matter");
}

#[test]
fn layer_range_terms_never_match_embed_final_norm_or_lm_head() {
    let got = select("layers[0..100].all", &qwen_names());
    assert_eq!(got.len(), LAYERS * 14);
    assert!(!got.iter().any(|n| n.contains("embed") || n == "model.norm.weight" || n == "lm_head.weight"));
    let e = select_err("layers[0..4].embed", &qwen_names());
    assert!(e.contains("matches no tensor"), "{e}");
}

#[test]
fn regex_after_a_layer_range_and_negated() {
    let got = select(r"layers[1].re:.*\.bias", &qwen_names());
    assert_eq!(got.len(), 3);
    assert!(got.iter().all(|n| n.starts_with("model.layers.1.")));
    assert_eq!(count(r"o_proj,!re:model\.layers\.0\..*"), 3);
}

#[test]
fn regex_is_matched_against_the_whole_canonical_name() {
    assert!(select_err("re:o_proj", &qwen_names()).contains("matches no tensor"));
    assert_eq!(count("re:.*o_proj.*"), LAYERS);
    assert_eq!(count(r"re:model\.layers\.[13]\.mlp\.(up|down)_proj\.weight"), 4);
}

#[test]
fn regex_term_takes_the_rest_of_the_selector_including_commas() {
    // `{1,2}` holds a comma; it stays in the regex.
    let s = Selector::parse(r"embed,re:model\.layers\.[0-9]{1,2}\.self_attn\.o_proj\.weight").unwrap();
    assert_eq!(s.terms().len(), 2);
    assert_eq!(s.select(qwen_names().iter().map(String::as_str)).unwrap().len(), 1 + LAYERS);
}

#[test]
fn whitespace_around_terms_ranges_and_bang_is_ignored() {
    assert_eq!(count(" o_proj , ! layers[ 0 .. 2 , 3 ]. o_proj "), 1);
}

#[test]
fn with_layers_restricts_terms_without_their_own_range() {
    let names = qwen_names();
    let s = Selector::parse("o_proj").unwrap().with_layers("1..3").unwrap();
    assert_eq!(s.to_string(), "layers[1..3].o_proj");
    assert_eq!(s.select(names.iter().map(String::as_str)).unwrap().len(), 2);

    // A term's own range wins; embed gets the range too and so matches nothing.
    let s = Selector::parse("layers[0].o_proj,k_proj.weight,embed").unwrap().with_layers("2..=3").unwrap();
    assert_eq!(s.to_string(), "layers[0].o_proj,layers[2..4].k_proj.weight,layers[2..4].embed");
    assert_eq!(s.select(names.iter().map(String::as_str)).unwrap().len(), 1 + 2);
}

#[test]
fn with_layers_on_a_negative_only_selector_restricts_its_implicit_all() {
    let s = Selector::parse("!o_proj").unwrap().with_layers("1").unwrap();
    assert_eq!(s.to_string(), "layers[1].all,!layers[1].o_proj");
    let names = qwen_names();
    let got = s.select(names.iter().map(String::as_str)).unwrap();
    assert_eq!(got.len(), 14 - 1);
    assert!(got.iter().all(|n| n.starts_with("model.layers.1.")));
}

#[test]
fn with_layers_rejects_a_bad_range() {
    let e = Selector::parse("o_proj").unwrap().with_layers("30..5").unwrap_err();
    assert!(matches!(e, Error::Selector(_)));
    assert!(e.to_string().contains("bad layer range `30..5`"), "{e}");
}

#[test]
fn parse_layer_ranges_is_half_open() {
    assert_eq!(parse_layer_ranges("5..30").unwrap(), vec![5..30]);
    assert_eq!(parse_layer_ranges("0..=3,10").unwrap(), vec![0..4, 10..11]);
}

#[test]
fn matches_agrees_with_select_and_accepts_names_without_model_prefix() {
    let s = Selector::parse("layers[1].o,embed").unwrap();
    assert!(s.matches("model.layers.1.self_attn.o_proj.weight"));
    assert!(s.matches("layers.1.self_attn.o_proj.weight"));
    assert!(s.matches("embed_tokens.weight"));
    assert!(!s.matches("model.layers.2.self_attn.o_proj.weight"));
    assert!(!s.matches("something.else"));
}

#[test]
fn all_includes_tensors_the_taxonomy_calls_other_but_groups_do_not() {
    let mut names = qwen_names();
    names.insert(1, "model.layers.0.self_attn.rotary_emb.inv_freq".into());
    assert_eq!(select("all", &names).len(), 60);
    assert_eq!(select("layers[0].all", &names).len(), 15);
    assert!(!select("attn", &names).iter().any(|n| n.ends_with("inv_freq")));
    assert_eq!(select("re:.*inv_freq", &names).len(), 1);
}

#[test]
fn nothing_matched_names_the_layers_and_modules_present() {
    let e = select_err("layers[40..50].o_proj", &qwen_names());
    assert!(e.contains("`layers[40..50].o_proj` matches no tensor"), "{e}");
    assert!(e.contains("layers 0..4"), "{e}");
    assert!(e.contains("o_proj"), "{e}");

    // A Llama model has no q_norm: the error lists the modules it does have, without q_norm.
    let llama: Vec<String> =
        qwen_names().into_iter().filter(|n| !n.contains("_norm") && !n.ends_with(".bias")).collect();
    let e = select_err("q_norm", &llama);
    assert!(e.contains("matches no tensor") && e.contains("modules are embed, q_proj"), "{e}");
    assert!(!e.contains("q_norm,") && !e.contains("q_norm;"), "{e}");

    let e = select_err("o_proj", &[]);
    assert!(e.contains("no tensors"), "{e}");
}

#[test]
fn nothing_matched_because_negatives_removed_everything_says_so() {
    let e = select_err("o_proj,!attn", &qwen_names());
    assert!(e.contains("matches no tensor") && e.contains("4 tensors matched by its positive terms"), "{e}");
}

#[test]
fn explain_lists_each_terms_matches_and_unmatched_terms() {
    // Tied embeddings: no lm_head tensor.
    let names: Vec<String> = qwen_names().into_iter().filter(|n| n != "lm_head.weight").collect();
    let s = Selector::parse("o_proj,norms,embed,lm_head,!layers[0].q_norm").unwrap();
    let ex = s.explain(names.iter().map(String::as_str));
    assert_eq!(ex.total, 58);
    assert_eq!(ex.terms.len(), 5);
    assert_eq!(ex.terms[0].names.len(), 4);
    assert_eq!(ex.terms[4].names, ["model.layers.0.self_attn.q_norm.weight"]);
    assert!(ex.terms[4].negated);
    assert_eq!(ex.selected.len(), 4 + 17 + 1 - 1);
    let unmatched: Vec<&str> = ex.unmatched().map(|t| t.term.as_str()).collect();
    assert_eq!(unmatched, ["lm_head"]);

    let text = ex.to_string();
    for needle in [
        "o_proj: 4 tensors",
        "o_proj.weight: layers 0..4 (4 tensors)",
        "input_norm.weight: layers 0..4 (4 tensors)",
        "model.norm.weight",
        "embed: 1 tensor",
        "model.embed_tokens.weight",
        "lm_head: matched nothing",
        "!layers[0].q_norm: removes 1 tensor",
        "q_norm.weight: layer 0",
    ] {
        assert!(text.contains(needle), "missing `{needle}` in:\n{text}");
    }
    assert!(!text.ends_with('\n'));
}

#[test]
fn explain_folds_gaps_into_several_runs() {
    let s = Selector::parse("layers[0..2,3].o_proj").unwrap();
    let text = s.explain(qwen_names().iter().map(String::as_str)).to_string();
    assert!(text.contains("o_proj.weight: layers 0..2, 3 (3 tensors)"), "{text}");
}

#[test]
fn explain_of_a_negative_only_selector_shows_the_implicit_all() {
    let s = Selector::parse("!o_proj").unwrap();
    let ex = s.explain(qwen_names().iter().map(String::as_str));
    assert!(ex.terms[0].implicit && ex.terms[0].names.len() == 59);
    assert_eq!(ex.selected.len(), 55);
    assert_eq!(ex.unmatched().count(), 0);
    let text = ex.to_string();
    assert!(text.contains("all (implicit") && text.contains("!o_proj: removes 4 tensors"), "{text}");
}

#[test]
fn display_is_canonical_and_parses_back_to_the_same_selection() {
    let names = qwen_names();
    let cases = [
        ("o", "o_proj"),
        (" q , k.bias ", "q_proj,k_proj.bias"),
        ("layers[0..=1, 3].mlp", "layers[0..2,3].mlp"),
        ("!layers[2..3].attn.weight", "!layers[2].attn.weight"),
        (r"norms, ! re:.*\.bias", r"norms,!re:.*\.bias"),
        (r"layers[1].re:.*\.bias  ", r"layers[1].re:.*\.bias"),
        ("o_proj,norms,embed,lm_head", "o_proj,norms,embed,lm_head"),
    ];
    for (input, canonical) in cases {
        let s = Selector::parse(input).unwrap();
        assert_eq!(s.to_string(), canonical, "{input}");
        let again: Selector = canonical.parse().unwrap();
        assert_eq!(again.to_string(), canonical);
        let a: Vec<&str> = names.iter().map(String::as_str).filter(|n| s.matches(n)).collect();
        let b: Vec<&str> = names.iter().map(String::as_str).filter(|n| again.matches(n)).collect();
        assert_eq!(a, b, "{input}");
    }
}

#[test]
fn error_unknown_module_lists_what_is_known() {
    let e = parse_err("o_prj");
    assert!(e.contains("`o_prj`: unknown module `o_prj`"), "{e}");
    assert!(e.contains("did you mean `o_proj`?"), "{e}");
    for known in ["embed", "q_proj", "post_attn_norm", "lm_head", "attn", "qkv", "mlp", "norms", "all", "re:"] {
        assert!(e.contains(known), "{known} missing in {e}");
    }
    assert!(parse_err("o_proj,mystery").contains("unknown module `mystery`"));
    assert!(parse_err("other").contains("unknown module `other`"));
}

#[test]
fn error_bad_layer_range() {
    for (sel, bad) in [
        ("layers[5..3].o_proj", "5..3"),
        ("layers[5..5].o", "5..5"),
        ("layers[3..=2].o", "3..=2"),
        ("layers[x].o", "x"),
        ("layers[1..].o", "1.."),
    ] {
        let e = parse_err(sel);
        assert!(e.contains(&format!("bad layer range `{bad}`")), "{sel}: {e}");
    }
    assert!(parse_err("layers[].o").contains("empty layer range"));
    assert!(parse_err("layers[0,,1].o").contains("empty layer range"));
}

#[test]
fn error_unterminated_layers_bracket() {
    for sel in ["layers[0..2.o_proj", "layers[0..2", "layers[0..2,o_proj,layers[3].k"] {
        let e = parse_err(sel);
        assert!(e.contains("unterminated `layers[`"), "{sel}: {e}");
    }
}

#[test]
fn error_layer_range_without_a_module() {
    assert!(parse_err("layers[0..2]").contains("must be followed by `.`"));
    assert!(parse_err("layers[0..2]o_proj").contains("must be followed by `.`"));
    assert!(parse_err("layers[0..2].").contains("missing module"));
    assert!(parse_err("layers[0..2].,o").contains("missing module"));
}

#[test]
fn error_empty_selector_and_empty_terms() {
    assert!(parse_err("").contains("empty selector"));
    assert!(parse_err("   ").contains("empty selector"));
    for (sel, col) in [(",o_proj", 1), ("o_proj,", 8), ("o_proj,,k", 8), ("o_proj, ,k", 9)] {
        let e = parse_err(sel);
        assert!(e.contains(&format!("empty term at column {col}")), "{sel}: {e}");
    }
    assert!(parse_err("!").contains("`!` at column 2 is not followed by a module"));
    assert!(parse_err("o,!").contains("not followed by a module"));
    assert!(parse_err("!!o_proj").contains("`!` given twice"));
}

#[test]
fn error_invalid_regex_carries_the_regex_error_on_one_line() {
    let e = parse_err("re:(unclosed");
    assert!(e.contains("invalid regex `(unclosed`"), "{e}");
    assert!(e.contains("unclosed group"), "{e}");
    assert_eq!(e.lines().count(), 1, "{e}");
    assert!(parse_err("o_proj,re:").contains("empty regex after `re:`"));
}

#[test]
fn error_unknown_parameter_suffix() {
    let e = parse_err("o_proj.wieght");
    assert!(e.contains("unknown parameter `.wieght`"), "{e}");
    assert!(parse_err("mlp.weight.bias").contains("unknown parameter"));
}

#[test]
fn errors_name_the_whole_selector() {
    let e = parse_err("o_proj,layers[9..1].mlp");
    assert!(e.starts_with("selector: `o_proj,layers[9..1].mlp`: bad layer range `9..1`"), "{e}");
}
