//! `sfn convert MODEL -o OUT [--dtype bf16] [--max-shard-size 5GB]`: rewrite any checkpoint sfn
//! reads (HF directory, .safetensors, .gguf) as a Hugging Face safetensors directory. GGUF tensors
//! are dequantized (q/k rows un-permuted), a config.json is written from the GGUF metadata and the
//! GGUF's tokenizer as tokenizer.json + tokenizer_config.json (with its chat template).

use crate::progress::Bars;
use anyhow::Result;
use sfn_checkpoint::writer::{write_checkpoint, write_tensor_as, TensorSpec, WriteSpec};
use sfn_checkpoint::{Checkpoint, Format};
use sfn_model::Tokenizer;
use sfn_run::{Progress, Unit};
use std::path::PathBuf;

#[derive(clap::Args)]
pub struct Args {
    /// Checkpoint directory, .safetensors file or .gguf file.
    model: PathBuf,
    #[command(flatten)]
    output: WriteSpec,
}

pub fn run(args: Args) -> Result<()> {
    let ck = Checkpoint::open(&args.model)?;
    let forced = args.output.dtype()?;
    let specs = TensorSpec::all_of(&ck, forced);
    let mut opts = args.output.options(&[&ck])?;
    if ck.format == Format::Gguf {
        opts.extra_files.extend(Tokenizer::for_source(&ck)?.hf_files()?);
    }
    opts.metadata.insert("sfn_source".into(), ck.path.display().to_string());
    let bars = Bars::default();
    bars.stage("converting", specs.iter().map(|s| s.nbytes()).sum(), Unit::Bytes);
    let summary = write_checkpoint(args.output.out()?, &specs, &opts, |spec, w| {
        write_tensor_as(&ck, ck.tensor(&spec.name)?, spec.dtype, w)?;
        bars.advance(spec.nbytes());
        Ok(())
    })?;
    bars.finish();
    eprintln!(
        "wrote {} ({} tensors, {} shard(s), {} bytes)",
        summary.dir.display(),
        specs.len(),
        summary.shards.len(),
        summary.total_bytes
    );
    Ok(())
}
