//! Settings of the losses the binary registered (`engine::extend`): a loss stage's
//! `params`, checked by the loss's own spec and located at the key at fault. (Callbacks
//! and data sources are checked while parsing: their settings sit beside `type`/`kind`.)

use super::graph::field_path;
use crate::diag::Diagnostic;
use crate::parse::{ParsedPipeline, parse_path};
use crate::spec::Stage;
use crate::spec::tagged::split_marked;

pub(super) fn check(parsed: &ParsedPipeline, out: &mut Vec<Diagnostic>) {
    for (i, stage) in parsed.pipeline.stages.iter().enumerate() {
        let Stage::Loss(l) = stage else { continue };
        let name = l.function.as_str();
        if l.function.row().params {
            let Err(marked) = crate::extend::check_loss(name, l.params.as_ref()) else {
                continue;
            };
            let (inner, message) = split_marked(&marked);
            let at = [field_path(i, "params"), parse_path(inner)].concat();
            let at = if l.params.is_some() {
                at
            } else {
                field_path(i, "fn")
            };
            out.push(
                Diagnostic::new("invalid-loss-params", format!("loss `{name}`: {message}"))
                    .at(parsed.span(&at), "here")
                    .stage(stage.id())
                    .hint(format!(
                        "`params:` holds the settings of `{name}`; `{} schema` describes them",
                        crate::extend::program_name()
                    )),
            );
        } else if l.params.is_some() {
            out.push(
                Diagnostic::new(
                    "unexpected-params",
                    format!("`params` holds a registered loss's settings; `{name}` takes none"),
                )
                .at(parsed.key_span(&field_path(i, "params")), "not used")
                .stage(stage.id())
                .hint("remove `params`; the built-in losses take their settings as keys of the stage (`label_smoothing`, `delta`, ...)"),
            );
        }
    }
}
