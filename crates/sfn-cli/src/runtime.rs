//! The runtime options every model-running command shares (generate, trace, eval, merge/destroy
//! `--eval`, the sweeps), and the one place that turns them into a loaded model and tokenizer;
//! the sampling options of the generating commands.

use anyhow::{Context, Result};
use sfn_model::{parse_device, set_threads, Activations, LoadOptions, Model, Tokenizer, WeightSource};

#[derive(clap::Args, Clone)]
#[command(next_help_heading = "Runtime")]
pub struct RuntimeArgs {
    /// CPU threads (default: all cores).
    #[arg(long)]
    pub threads: Option<usize>,
    /// cpu, cuda or cuda:N.
    #[arg(long, default_value = "cpu")]
    pub device: String,
    /// Quantized weights meet 8-bit activations (llama.cpp's scheme: faster, less exact).
    #[arg(long)]
    pub q8: bool,
    /// Widen quantized weights to f32 at load time.
    #[arg(long, conflicts_with = "q8")]
    pub dequantize: bool,
}

impl RuntimeArgs {
    /// Fix the thread count (call once, before loading): candle otherwise re-reads the CPU
    /// topology on every matmul.
    pub fn init(&self) -> Result<()> {
        set_threads(self.threads.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get())))?;
        Ok(())
    }

    pub fn load_options(&self) -> Result<LoadOptions> {
        Ok(LoadOptions {
            device: parse_device(&self.device)?,
            dequantize: self.dequantize,
            activations: if self.q8 { Activations::Q8 } else { Activations::F32 },
        })
    }

    /// The model of `src`.
    pub fn load_model(&self, src: &dyn WeightSource) -> Result<Model> {
        Model::load(src, &self.load_options()?).with_context(|| format!("loading {}", src.path().display()))
    }

    /// The model of `src` and its tokenizer.
    pub fn load(&self, src: &dyn WeightSource) -> Result<(Model, Tokenizer)> {
        let tok = Tokenizer::for_source(src).with_context(|| format!("tokenizer of {}", src.path().display()))?;
        Ok((self.load_model(src)?, tok))
    }

    /// How the model runs, for result files.
    pub fn describe(&self) -> serde_json::Value {
        serde_json::json!({
            "device": self.device,
            "activations": if self.q8 { "q8" } else { "f32" },
            "dequantize": self.dequantize,
        })
    }
}

/// How the next token is chosen (generate, eval and everything that evaluates).
#[derive(clap::Args, Clone)]
pub struct SamplingArgs {
    /// Sampling temperature (0 = greedy). Sampling is seeded by --seed.
    #[arg(long, default_value_t = 0.0)]
    pub temperature: f64,
    /// Sample only among the k most likely tokens.
    #[arg(long)]
    pub top_k: Option<usize>,
    /// Sample only among the most likely tokens whose probabilities sum to p.
    #[arg(long)]
    pub top_p: Option<f64>,
}

impl SamplingArgs {
    /// Greedy at temperature 0 (where top-k/top-p would be ignored, so they are refused).
    pub fn greedy(&self) -> Result<bool> {
        if self.temperature.is_nan() || self.temperature < 0.0 {
            anyhow::bail!("--temperature {} must be ≥ 0", self.temperature);
        }
        if self.temperature == 0.0 && (self.top_k.is_some() || self.top_p.is_some()) {
            anyhow::bail!("--top-k/--top-p need --temperature > 0 (0 is greedy)");
        }
        Ok(self.temperature == 0.0)
    }

    pub fn with_seed(&self, seed: u64) -> Result<sfn_model::Sampling> {
        self.greedy()?;
        Ok(sfn_model::Sampling { temperature: self.temperature, top_k: self.top_k, top_p: self.top_p, seed })
    }
}
