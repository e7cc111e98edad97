//! The output options every checkpoint-writing command shares (convert, merge, destroy), and the
//! one place that turns them into `WriteOptions`.

use anyhow::{bail, Context, Result};
use sfn_checkpoint::writer::WriteOptions;
use sfn_checkpoint::{Checkpoint, DType};
use std::path::{Path, PathBuf};

#[derive(clap::Args)]
pub struct OutputArgs {
    /// Output directory (must not exist, unless --force; never an input).
    #[arg(long, short = 'o')]
    pub out: Option<PathBuf>,
    /// Store every tensor as f32, f16, bf16 or f64 (default: keep the stored dtype; quantized
    /// GGUF tensors become f32).
    #[arg(long)]
    pub dtype: Option<String>,
    /// Largest shard, e.g. 5GB, 500MB, 2GiB or a byte count (transformers' default is 5GB).
    #[arg(long, default_value = "5GB")]
    pub max_shard_size: String,
    /// Replace OUT if it exists.
    #[arg(long)]
    pub force: bool,
    /// fsync the output before renaming it into place (survives power loss; slower).
    #[arg(long)]
    pub sync: bool,
}

impl OutputArgs {
    pub fn out(&self) -> Result<&Path> {
        self.out.as_deref().context("-o OUT (the output directory) is required")
    }

    pub fn dtype(&self) -> Result<Option<DType>> {
        match &self.dtype {
            Some(d) => Ok(Some(
                DType::parse_writable(d).with_context(|| format!("--dtype {d}: choose f32, f16, bf16 or f64"))?,
            )),
            None => Ok(None),
        }
    }

    /// Options for writing OUT from `inputs` (all their files and paths are protected); side
    /// files (tokenizer, generation config) come from the first input when it is an HF directory.
    pub fn write_options(&self, inputs: &[&Checkpoint]) -> Result<WriteOptions> {
        let mut protected = Vec::new();
        for ck in inputs {
            protected.push(ck.path.clone());
            protected.extend(ck.files().map(|p| p.to_path_buf()));
        }
        let first = inputs[0];
        Ok(WriteOptions {
            max_shard_bytes: parse_size(&self.max_shard_size)?,
            side_files_from: (first.format == sfn_checkpoint::Format::SafetensorsDir).then(|| first.path.clone()),
            config_json: match first.format {
                sfn_checkpoint::Format::SafetensorsDir => None,
                _ => first.config.as_ref().map(|c| c.to_hf_json()),
            },
            inputs: protected,
            overwrite: self.force,
            sync: self.sync,
            ..Default::default()
        })
    }
}

/// Parse "5GB", "500MB", "2GiB", "1234" into bytes (decimal and binary units, like transformers).
pub fn parse_size(s: &str) -> Result<u64> {
    let t = s.trim();
    let split = t.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let mult: f64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1.0,
        "kb" => 1e3,
        "mb" => 1e6,
        "gb" => 1e9,
        "tb" => 1e12,
        "kib" => 1024.0,
        "mib" => 1024f64.powi(2),
        "gib" => 1024f64.powi(3),
        "tib" => 1024f64.powi(4),
        other => bail!("size `{s}`: unknown unit `{other}` (use B, KB, MB, GB, KiB, MiB, GiB)"),
    };
    let n: f64 = num.parse().with_context(|| format!("size `{s}` is not a number with a unit"))?;
    if n <= 0.0 {
        bail!("size `{s}` must be positive");
    }
    Ok((n * mult) as u64)
}

/// The command line as the user typed it, for result files and model cards.
pub fn command_line() -> String {
    std::env::args().collect::<Vec<_>>().join(" ")
}

/// Write an edited view as a checkpoint in OUT, with a README.md model card that records the plan,
/// the inputs and the command line, and the plan in every shard's metadata. config.json, the
/// tokenizer and the generation config come from A, or from B with `files_from_b`.
pub fn write_view(
    view: &sfn_checkpoint::edit::EditView,
    output: &OutputArgs,
    title: &str,
    files_from_b: bool,
) -> Result<()> {
    use sfn_checkpoint::writer::write_checkpoint;
    let mut inputs = vec![view.a];
    inputs.extend(view.b);
    if files_from_b {
        inputs.reverse();
    }
    let mut opts = output.write_options(&inputs)?;
    if let Some(cfg) = view.config_json()? {
        opts.config_json = Some(cfg);
    }
    let plan_json = serde_json::to_string(&view.plan)?;
    opts.metadata.insert("sfn_plan".into(), plan_json.clone());
    let edited: Vec<_> = view.tensors().iter().filter(|t| t.edit.is_some()).collect();
    let edited_params: u64 = edited.iter().map(|t| t.shape.iter().product::<usize>() as u64).sum();
    let card = format!(
        "# {title}\n\nWritten by sfn {version}.\n\n- A: `{a}`\n{b}- plan: `{plan_json}`\n- edited tensors: {n} ({params} parameters); removed layers: {removed}\n- command: `{cmd}`\n\nEdited tensors:\n\n{list}\n",
        version = env!("CARGO_PKG_VERSION"),
        a = view.a.path.display(),
        b = view.b.map(|b| format!("- B: `{}`\n", b.path.display())).unwrap_or_default(),
        n = edited.len(),
        params = edited_params,
        removed = if view.plan.remove_layers.is_empty() { "none".to_string() } else { format!("{:?}", view.plan.remove_layers) },
        cmd = command_line(),
        list = edited.iter().map(|t| format!("- `{}`", t.name)).collect::<Vec<_>>().join("\n"),
    );
    opts.extra_files.push(("README.md".into(), card));
    let specs = view.specs(output.dtype()?);
    let bar = crate::progress::bytes_bar(specs.iter().map(|s| s.nbytes()).sum(), "writing");
    let summary = write_checkpoint(output.out()?, &specs, &opts, |spec, w| {
        let planned = view.get(&spec.name).expect("specs come from the view");
        view.write_tensor(planned, spec.dtype, w)?;
        bar.inc(spec.nbytes());
        Ok(())
    })?;
    bar.finish_and_clear();
    eprintln!(
        "wrote {} ({} tensors, {} edited, {} shard(s))",
        summary.dir.display(),
        specs.len(),
        edited.len(),
        summary.shards.len()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::parse_size;

    #[test]
    fn sizes_in_decimal_and_binary_units() {
        assert_eq!(parse_size("5GB").unwrap(), 5_000_000_000);
        assert_eq!(parse_size("2GiB").unwrap(), 2 << 30);
        assert_eq!(parse_size("500 MB").unwrap(), 500_000_000);
        assert_eq!(parse_size("1234").unwrap(), 1234);
        assert!(parse_size("5XB").unwrap_err().to_string().contains("unknown unit"));
        assert!(parse_size("0MB").is_err());
    }
}
