//! `sfn convert MODEL -o OUT [--dtype bf16] [--max-shard-size 5GB]`: rewrite any checkpoint sfn
//! reads (HF directory, .safetensors, .gguf) as a Hugging Face safetensors directory. GGUF tensors
//! are dequantized (q/k rows un-permuted) and a config.json is written from the GGUF metadata.

use crate::progress::bytes_bar;
use anyhow::{bail, Context, Result};
use sfn_checkpoint::writer::{write_checkpoint, write_tensor_as, TensorSpec, WriteOptions};
use sfn_checkpoint::{Checkpoint, DType, Format};
use std::path::PathBuf;

#[derive(clap::Args)]
pub struct Args {
    /// Checkpoint directory, .safetensors file or .gguf file.
    model: PathBuf,
    /// Output directory (must not exist, unless --force; never an input).
    #[arg(long, short = 'o')]
    out: PathBuf,
    /// Store every tensor as f32, f16, bf16 or f64 (default: keep the stored dtype; quantized
    /// GGUF tensors become f32).
    #[arg(long)]
    dtype: Option<String>,
    /// Largest shard, e.g. 5GB, 500MB, 2GiB or a byte count (transformers' default is 5GB).
    #[arg(long, default_value = "5GB")]
    max_shard_size: String,
    /// Replace OUT if it exists.
    #[arg(long)]
    force: bool,
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

pub fn run(args: Args) -> Result<()> {
    let ck = Checkpoint::open(&args.model).with_context(|| format!("cannot open {}", args.model.display()))?;
    let forced = match &args.dtype {
        Some(d) => Some(DType::parse_writable(d).with_context(|| format!("--dtype {d}: choose f32, f16, bf16 or f64"))?),
        None => None,
    };
    let specs: Vec<TensorSpec> = ck
        .tensors()
        .iter()
        .map(|t| TensorSpec {
            name: t.name.clone(),
            dtype: forced.unwrap_or(if t.dtype.is_quantized() { DType::F32 } else { t.dtype }),
            shape: t.shape.clone(),
        })
        .collect();
    let mut inputs: Vec<PathBuf> = ck.files().map(|p| p.to_path_buf()).collect();
    inputs.push(ck.path.clone());
    let opts = WriteOptions {
        max_shard_bytes: parse_size(&args.max_shard_size)?,
        metadata: [("sfn_source".to_string(), ck.path.display().to_string())].into(),
        side_files_from: (ck.format == Format::SafetensorsDir).then(|| ck.path.clone()),
        config_json: match ck.format {
            Format::SafetensorsDir => None,
            _ => ck.config.as_ref().map(|c| c.to_hf_json()),
        },
        inputs,
        overwrite: args.force,
        ..Default::default()
    };
    let bar = bytes_bar(specs.iter().map(|s| s.nbytes()).sum(), "converting");
    let summary = write_checkpoint(&args.out, &specs, &opts, |spec, w| {
        write_tensor_as(&ck, ck.tensor(&spec.name)?, spec.dtype, w)?;
        bar.inc(spec.nbytes());
        Ok(())
    })?;
    bar.finish_and_clear();
    eprintln!(
        "wrote {} ({} tensors, {} shard(s), {} bytes)",
        summary.dir.display(),
        specs.len(),
        summary.shards.len(),
        summary.total_bytes
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
