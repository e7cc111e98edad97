//! `sfn serve MODEL [--merge B --take SEL | --destroy SEL --method M] [--port P]`: an
//! OpenAI-compatible server over the runtime, for the model or an edited view held in memory.

use anyhow::Result;

pub type Args = sfn_serve::ServeSpec;

pub fn run(args: Args) -> Result<()> {
    sfn_serve::serve(&args, |url, name| {
        eprintln!("serving `{name}` on {url}/v1 (OpenAI API: /v1/models, /v1/completions, /v1/chat/completions; /tokenize, /detokenize); Ctrl-C stops");
    })?;
    eprintln!("stopped");
    Ok(())
}
