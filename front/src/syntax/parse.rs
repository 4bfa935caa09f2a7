//! Source text to AST: pest does the matching (grammar/hoyer.pest), this module builds the
//! tree and turns pest's failures into diagnostics.
//!
//! Deep input must never overflow the stack: bracket nesting is bounded before pest runs
//! (pest recurses per bracket), and the expression builder bounds operator nesting.

use crate::codes::Code;
use crate::diagnostics::Diagnostic;
use crate::syntax::ast::*;
use pest::iterators::Pair;
use pest::Parser;

#[derive(pest_derive::Parser)]
#[grammar = "../grammar/hoyer.pest"]
struct HoyerParser;

/// Most brackets `( [ {` open at once. Real specs use a handful.
pub const MAX_BRACKET_NESTING: usize = 32;
/// Deepest expression tree (operators, calls and lists, counted together).
pub const MAX_EXPR_DEPTH: usize = 200;
/// Most rule calls one parse may make: a safety net, far above what any spec needs (a
/// 10,000-line spec makes a few million), so that a grammar path that backtracks
/// exponentially ends in a diagnostic instead of a hang.
pub const MAX_PARSE_CALLS: usize = 50_000_000;

pub fn parse(src: &str) -> Result<File, Vec<Diagnostic>> {
    if let Some(d) = check_bracket_nesting(src) {
        return Err(vec![d]);
    }
    pest::set_error_detail(true);
    pest::set_call_limit(std::num::NonZeroUsize::new(MAX_PARSE_CALLS));
    let mut pairs = HoyerParser::parse(Rule::file, src).map_err(|e| syntax_errors(src, &e))?;
    let file = pairs.next().expect("the file rule always yields one pair");
    let mut b = Builder { errors: Vec::new(), depth: 0 };
    let items = file.into_inner().filter(|p| p.as_rule() != Rule::EOI).filter_map(|p| b.item(p)).collect();
    if b.errors.is_empty() {
        Ok(File { items, comments: super::trivia::comments(src) })
    } else {
        Err(b.errors)
    }
}

/// The spec's tokens, without its comments and layout: two texts with the same tokens are the
/// same spec (a resume accepts an edited comment). `None` where the text does not parse.
pub fn tokens(src: &str) -> Option<Vec<&str>> {
    if check_bracket_nesting(src).is_some() {
        return None;
    }
    pest::set_call_limit(std::num::NonZeroUsize::new(MAX_PARSE_CALLS));
    let pairs = HoyerParser::parse(Rule::file, src).ok()?;
    Some(pairs.flatten().filter(|p| p.clone().into_inner().next().is_none()).map(|p| p.as_str()).collect())
}

/// pest stops at the first syntax error. To report one per broken item, each top-level item
/// (from a line starting with `data`, `model`, `block`, `fn` or `train` to the next) is parsed
/// again on its own, and its error moved back to its place in the file; inside a model or a
/// block, each statement too.
fn syntax_errors(src: &str, first: &pest::error::Error<Rule>) -> Vec<Diagnostic> {
    let mut errors = vec![syntax_error(src, first)];
    if matches!(first.variant, pest::error::ErrorVariant::CustomError { .. }) {
        return errors; // the parser gave up; parsing the items again would only repeat that
    }
    let starts: Vec<usize> = std::iter::once(0)
        .chain(src.match_indices('\n').map(|(i, _)| i + 1))
        .filter(|&i| ["data", "model", "block", "fn", "train"].iter().any(|k| src[i..].starts_with(k)))
        .collect();
    for (k, &start) in starts.iter().enumerate() {
        let end = starts.get(k + 1).copied().unwrap_or(src.len());
        let item = &src[start..end];
        if let Err(e) = HoyerParser::parse(Rule::file, item) {
            // Inside a model or a block, one error per broken statement where the statements
            // alone show them; else the item's.
            let mut found: Vec<Diagnostic> = if item.starts_with("model") || item.starts_with("block") {
                statement_errors(item).into_iter().map(|d| shifted(d, start)).collect()
            } else {
                vec![]
            };
            if found.is_empty() {
                found.push(shifted(syntax_error(item, &e), start));
            } else if (start..end).contains(&errors[0].position()) {
                // The whole file's first error is one of these, seen from too far.
                errors.remove(0);
            }
            for d in found {
                if !errors.iter().any(|known| known.position() == d.position()) {
                    errors.push(d);
                }
            }
        }
    }
    errors.sort_by_key(|d| d.position());
    errors
}

fn shifted(mut d: Diagnostic, by: usize) -> Diagnostic {
    for l in &mut d.labels {
        l.span = Span::new(l.span.start + by, l.span.end + by);
    }
    d
}

/// Inside a broken model or block, each statement — a line that starts a binding
/// (`name = ...`) or a `return`, with the lines that continue it — is parsed on its own, so
/// that every broken statement is reported, not only the first.
fn statement_errors(item: &str) -> Vec<Diagnostic> {
    let starts_statement = |line: &str| {
        let t = line.trim_start();
        if t.starts_with("return") && !t[6..].starts_with(|c: char| c.is_ascii_alphanumeric() || c == '_') {
            return true;
        }
        let name = t.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '.')).unwrap_or(t.len());
        name > 0 && t[name..].trim_start().starts_with('=') && !t[name..].trim_start().starts_with("==")
    };
    // The lines of the body: after the header's line, before a last line holding `}` alone.
    let mut lines: Vec<(usize, &str)> = Vec::new();
    let mut at = 0;
    for line in item.split_inclusive('\n') {
        lines.push((at, line));
        at += line.len();
    }
    while lines.last().is_some_and(|(_, l)| l.trim().is_empty() || l.trim() == "}") {
        lines.pop();
    }
    let mut errors = Vec::new();
    let mut statement: Option<(usize, usize)> = None;
    let check = |from: usize, to: usize, errors: &mut Vec<Diagnostic>| {
        let text = item[from..to].trim_end();
        if let Err(e) = HoyerParser::parse(Rule::statement_alone, text) {
            let mut d = syntax_error(text, &e);
            // Alone, a statement's end is its text's: say so, not "end of file".
            d.message = d.message.replace("end of file", "the end of the statement");
            d.help = d.help.map(|h| h.replace("end of the file", "end of the statement"));
            errors.push(shifted(d, from));
        }
    };
    for &(start, line) in lines.iter().skip(1) {
        if starts_statement(line) {
            if let Some((from, to)) = statement.take() {
                check(from, to, &mut errors);
            }
            statement = Some((start, start + line.len()));
        } else if let Some((_, to)) = statement.as_mut() {
            *to = start + line.len();
        }
    }
    if let Some((from, to)) = statement {
        check(from, to, &mut errors);
    }
    errors
}

/// Finds the first bracket nested deeper than `MAX_BRACKET_NESTING`, skipping comments and
/// strings the way the grammar does.
fn check_bracket_nesting(src: &str) -> Option<Diagnostic> {
    let bytes = src.as_bytes();
    let (mut i, mut depth) = (0, 0usize);
    while i < bytes.len() {
        match bytes[i] {
            b'/' if bytes.get(i + 1) == Some(&b'/') => {
                while i < bytes.len() && bytes[i] != b'\n' {
                    i += 1;
                }
            }
            b'"' => {
                i += 1;
                while i < bytes.len() && bytes[i] != b'"' && bytes[i] != b'\n' {
                    i += if bytes[i] == b'\\' { 2 } else { 1 };
                }
            }
            b'(' | b'[' | b'{' => {
                depth += 1;
                if depth > MAX_BRACKET_NESTING {
                    return Some(
                        Diagnostic::error(Code::TooDeep, "brackets nested too deeply")
                            .label(Span::new(i, i + 1), format!("bracket number {depth} opened here"))
                            .help(format!(
                                "hoyer reads at most {MAX_BRACKET_NESTING} nested brackets; name parts of the expression with `fn`"
                            )),
                    );
                }
            }
            b')' | b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
        i += 1;
    }
    None
}

/// A pair's span without the whitespace and comments pest may attach to its end.
fn span_of(p: &Pair<Rule>) -> Span {
    let start = p.as_span().start();
    Span::new(start, start + without_trailing_trivia(p.as_str()).len())
}

fn without_trailing_trivia(mut text: &str) -> &str {
    loop {
        let trimmed = text.trim_end_matches(|c: char| c.is_whitespace() || c == ';');
        let line_start = trimmed.rfind('\n').map_or(0, |i| i + 1);
        match comment_start(&trimmed[line_start..]) {
            Some(at) => text = &trimmed[..line_start + at],
            None => return trimmed,
        }
    }
}

/// Where a `//` comment starts in one line, outside string literals.
fn comment_start(line: &str) -> Option<usize> {
    let bytes = line.as_bytes();
    let (mut i, mut in_string) = (0, false);
    while i < bytes.len() {
        match bytes[i] {
            b'"' => in_string = !in_string,
            b'\\' if in_string => i += 1,
            b'/' if !in_string && bytes.get(i + 1) == Some(&b'/') => return Some(i),
            _ => {}
        }
        i += 1;
    }
    None
}

fn ident(p: Pair<Rule>) -> Ident {
    Ident { name: p.as_str().to_string(), span: span_of(&p) }
}

fn is_keyword(r: Rule) -> bool {
    use Rule::*;
    matches!(
        r,
        kw_data
            | kw_model
            | kw_block
            | kw_fn
            | kw_train
            | kw_on
            | kw_return
            | kw_phase
            | kw_prune
            | kw_gradually
            | kw_below
            | kw_to
            | kw_sparsity
            | kw_globally
            | kw_from
            | kw_epoch
            | kw_every
            | kw_steps
            | kw_epochs
            | kw_then
            | kw_shrink
            | kw_scale
            | kw_normalize
            | kw_random_crop
            | kw_hflip
            | kw_batch
            | kw_loss
            | kw_seed
            | kw_shuffle
            | kw_init
            | kw_checkpoint
            | kw_validation
            | kw_optimizer
            | kw_lr_schedule
            | kw_penalty
            | kw_masks
            | kw_coupled
            | kw_param
    )
}

/// The children of a pair that carry meaning (keywords dropped).
fn parts(p: Pair<Rule>) -> impl Iterator<Item = Pair<Rule>> {
    p.into_inner().filter(|c| !is_keyword(c.as_rule()))
}

enum Tok {
    Neg(Span),
    Operand(Expr, usize),
    Op(Rule, Span),
}

struct Builder {
    errors: Vec<Diagnostic>,
    /// Current recursion depth of the expression builder.
    depth: usize,
}

impl Builder {
    fn item(&mut self, p: Pair<Rule>) -> Option<Item> {
        let span = span_of(&p);
        Some(match p.as_rule() {
            Rule::data_def => {
                let mut it = parts(p);
                let name = ident(it.next()?);
                let source = self.call(it.next()?)?;
                let mut settings = Vec::new();
                for block in it {
                    for s in block.into_inner() {
                        settings.extend(self.setting(s));
                    }
                }
                Item::Data(DataDef { name, source, settings, span })
            }
            Rule::model_def => {
                let mut it = parts(p);
                let name = ident(it.next()?);
                let input = input_decl(it.next()?);
                let body = self.model_body(it)?;
                Item::Model(ModelDef { name, input, body, span })
            }
            Rule::block_def => {
                let mut it = parts(p);
                let name = ident(it.next()?);
                let mut params = Vec::new();
                for param in it.next()?.into_inner() {
                    let mut inner = param.into_inner();
                    let name = ident(inner.next()?);
                    let default = match inner.next() {
                        Some(e) => Some(self.expr(e)?),
                        None => None,
                    };
                    params.push(BlockParam { name, default });
                }
                let body = self.model_body(it)?;
                Item::Block(BlockDef { name, params, body, span })
            }
            Rule::fn_def => {
                let mut it = parts(p);
                let name = ident(it.next()?);
                let mut params = Vec::new();
                let mut next = it.next()?;
                if next.as_rule() == Rule::fn_params {
                    params = next.into_inner().map(ident).collect();
                    next = it.next()?;
                }
                let body = self.expr(next)?;
                Item::Fn(FnDef { name, params, body, span })
            }
            Rule::train_def => {
                let mut it = parts(p);
                let model = ident(it.next()?);
                let data = ident(it.next()?);
                let mut body = Vec::new();
                for s in it {
                    match s.as_rule() {
                        Rule::phase_def => body.extend(self.phase(s).map(TrainStmt::Phase)),
                        Rule::prune_stmt => body.extend(self.prune(s).map(|p| TrainStmt::Prune(Box::new(p)))),
                        _ => body.extend(self.setting(s).map(TrainStmt::Setting)),
                    }
                }
                Item::Train(TrainDef { model, data, body, span })
            }
            Rule::unknown_stmt => {
                let word = ident(p.into_inner().next()?);
                Item::Unknown(Unknown { word, span })
            }
            _ => return None,
        })
    }

    /// The bindings and `return` of a model or a block.
    fn model_body<'i>(&mut self, stmts: impl Iterator<Item = Pair<'i, Rule>>) -> Option<Vec<ModelStmt>> {
        let mut body = Vec::new();
        for s in stmts {
            let s_span = span_of(&s);
            let rule = s.as_rule();
            let mut inner = parts(s);
            if rule == Rule::binding {
                let name = ident(inner.next()?);
                if let Some(value) = self.expr(inner.next()?) {
                    body.push(ModelStmt::Bind { name, value });
                }
            } else if rule == Rule::param_decl {
                let decl = input_decl(inner.next()?);
                let init = match inner.next() {
                    Some(e) => Some(self.expr(e)?),
                    None => None,
                };
                body.push(ModelStmt::Param { decl, init, span: s_span });
            } else if let Some(value) = self.expr(inner.next()?) {
                body.push(ModelStmt::Return { value, span: s_span });
            }
        }
        Some(body)
    }

    fn phase(&mut self, p: Pair<Rule>) -> Option<Phase> {
        let span = span_of(&p);
        let mut it = parts(p);
        let name = ident(it.next()?);
        let mut body = Vec::new();
        for s in it {
            if s.as_rule() == Rule::prune_stmt {
                body.extend(self.prune(s).map(|p| PhaseStmt::Prune(Box::new(p))));
            } else {
                body.extend(self.setting(s).map(PhaseStmt::Setting));
            }
        }
        Some(Phase { name, body, span })
    }

    /// Every one-word statement: the keyword becomes the key.
    fn setting(&mut self, p: Pair<Rule>) -> Option<Setting> {
        let span = span_of(&p);
        let rule = p.as_rule();
        let mut inner = p.into_inner();
        let first = inner.next()?;
        let key = ident(first);
        let rest: Vec<Pair<Rule>> = inner.filter(|c| !is_keyword(c.as_rule())).collect();
        let value = match rule {
            Rule::unknown_stmt => {
                SettingValue::Unknown { text: rest.first().map_or("", |r| r.as_str()).trim().to_string() }
            }
            Rule::normalize_stmt | Rule::random_crop_stmt => SettingValue::Args(self.args(rest.into_iter().next()?)?),
            Rule::hflip_stmt => SettingValue::Args(vec![]),
            Rule::loss_stmt | Rule::masks_stmt => {
                let id = ident(rest.into_iter().next()?);
                SettingValue::Expr(Expr { kind: ExprKind::Name(id.name), span: id.span })
            }
            Rule::init_stmt => {
                let s = rest.into_iter().next()?;
                SettingValue::Expr(Expr { kind: ExprKind::Str(unescape(s.as_str())), span: span_of(&s) })
            }
            _ => SettingValue::Expr(self.expr(rest.into_iter().next()?)?),
        };
        Some(Setting { key, value, span })
    }

    fn prune(&mut self, p: Pair<Rule>) -> Option<Prune> {
        fn selector_list(p: Pair<Rule>) -> Vec<Selector> {
            p.into_inner().map(|s| Selector { pattern: s.as_str().to_string(), span: span_of(&s) }).collect()
        }
        fn group_kind(word: &str) -> GroupKind {
            match word {
                "rows" | "filters" => GroupKind::Rows,
                "columns" | "channels" => GroupKind::Columns,
                _ => GroupKind::Groups,
            }
        }
        let span = span_of(&p);
        let (mut gradually, mut rule, mut window, mut every, mut selectors, mut shrink) =
            (None, None, None, None, Vec::new(), None);
        let mut coupled = None;
        for c in parts(p) {
            let c_span = span_of(&c);
            match c.as_rule() {
                Rule::gradually => gradually = Some(c_span),
                Rule::prune_below => {
                    let mut groups = None;
                    let mut threshold = None;
                    for q in parts(c) {
                        if q.as_rule() == Rule::group_kind {
                            groups = Some((group_kind(q.as_str()), span_of(&q)));
                        } else {
                            threshold = self.expr(q);
                        }
                    }
                    rule = Some(PruneRule::Below { groups, threshold: threshold? });
                }
                Rule::prune_sparsity => {
                    let (mut groups, mut target, mut globally) = (None, None, None);
                    for q in parts(c) {
                        match q.as_rule() {
                            Rule::group_kind => groups = Some((group_kind(q.as_str()), span_of(&q))),
                            Rule::globally => globally = Some(span_of(&q)),
                            _ => target = self.expr(q),
                        }
                    }
                    rule = Some(PruneRule::ToSparsity { groups, target: target?, globally });
                }
                Rule::prune_window => {
                    let mut it = parts(c);
                    let from = self.expr(it.next()?)?;
                    let to = self.expr(it.next()?)?;
                    window = Some((from, to));
                }
                Rule::prune_every => every = Some(self.expr(parts(c).next()?)?),
                Rule::selector_list => selectors = selector_list(c),
                Rule::coupled => {
                    for q in c.into_inner() {
                        match q.as_rule() {
                            Rule::kw_coupled => coupled = Some(span_of(&q)),
                            _ => selectors = selector_list(q),
                        }
                    }
                }
                Rule::shrink => shrink = Some(c_span),
                _ => {}
            }
        }
        Some(Prune { gradually, rule: rule?, window, every, selectors, coupled, shrink, span })
    }

    fn call(&mut self, p: Pair<Rule>) -> Option<Call> {
        let span = span_of(&p);
        let mut it = p.into_inner();
        let func = ident(it.next()?);
        let args = self.args(it.next()?)?;
        Some(Call { func, args, piped: false, span })
    }

    fn args(&mut self, p: Pair<Rule>) -> Option<Vec<Arg>> {
        let mut args = Vec::new();
        for a in p.into_inner() {
            let mut it = a.into_inner();
            let first = it.next()?;
            let arg = match it.next() {
                Some(value) => Arg { name: Some(ident(first)), value: self.expr(value)? },
                None => Arg { name: None, value: self.expr(first)? },
            };
            args.push(arg);
        }
        Some(args)
    }

    fn too_deep(&mut self, span: Span) {
        self.errors.push(
            Diagnostic::error(Code::TooDeep, "expression nested too deeply")
                .label(span, format!("more than {MAX_EXPR_DEPTH} levels deep here"))
                .help("split the expression into smaller `fn` definitions"),
        );
    }

    /// Builds an expression with precedence climbing over the flat list pest returns.
    fn expr(&mut self, p: Pair<Rule>) -> Option<Expr> {
        let span = span_of(&p);
        self.depth += 1;
        if self.depth > MAX_EXPR_DEPTH {
            self.depth -= 1;
            self.too_deep(span);
            return None;
        }
        let mut toks = Vec::new();
        for c in p.into_inner() {
            let c_span = span_of(&c);
            match c.as_rule() {
                Rule::neg => toks.push(Tok::Neg(c_span)),
                Rule::index => {
                    let inner = c.into_inner().next().and_then(|e| self.expr(e));
                    match (toks.pop(), inner) {
                        (Some(Tok::Operand(base, d)), Some(i)) => {
                            let span = base.span.to(c_span);
                            toks.push(Tok::Operand(
                                Expr { kind: ExprKind::Index(Box::new(base), Box::new(i)), span },
                                d + 1,
                            ));
                        }
                        _ => {
                            self.depth -= 1;
                            return None;
                        }
                    }
                }
                Rule::pipe | Rule::add | Rule::sub | Rule::mul | Rule::div | Rule::pow => {
                    toks.push(Tok::Op(c.as_rule(), c_span))
                }
                _ => match self.operand(c) {
                    Some(e) => toks.push(Tok::Operand(e, 1)),
                    None => {
                        self.depth -= 1;
                        return None;
                    }
                },
            }
        }
        toks.reverse(); // so that `pop` takes the next token
        let result = self.climb(&mut toks, 0).map(|(e, _)| e);
        self.depth -= 1;
        result
    }

    /// Binding powers (left, right): |> 1,2  + - 3,4  * / 5,6  unary - 7  ^ 10,9 (right-assoc).
    fn climb(&mut self, toks: &mut Vec<Tok>, min_bp: u8) -> Option<(Expr, usize)> {
        self.depth += 1;
        let result = self.climb_inner(toks, min_bp);
        self.depth -= 1;
        result
    }

    fn climb_inner(&mut self, toks: &mut Vec<Tok>, min_bp: u8) -> Option<(Expr, usize)> {
        let (mut lhs, mut lhs_depth) = match toks.pop()? {
            Tok::Operand(e, d) => (e, d),
            Tok::Neg(span) => {
                if self.depth > MAX_EXPR_DEPTH {
                    self.too_deep(span);
                    return None;
                }
                let (inner, d) = self.climb(toks, 7)?;
                let span = span.to(inner.span);
                (Expr { kind: ExprKind::Neg(Box::new(inner)), span }, d + 1)
            }
            Tok::Op(..) => return None,
        };
        while let Some(Tok::Op(rule, op_span)) = toks.last() {
            let (rule, op_span) = (*rule, *op_span);
            let (lbp, rbp) = match rule {
                Rule::pipe => (1, 2),
                Rule::add | Rule::sub => (3, 4),
                Rule::mul | Rule::div => (5, 6),
                _ => (10, 9),
            };
            if lbp < min_bp {
                break;
            }
            toks.pop();
            if self.depth > MAX_EXPR_DEPTH {
                self.too_deep(op_span);
                return None;
            }
            let (rhs, rhs_depth) = self.climb(toks, rbp)?;
            let depth = 1 + lhs_depth.max(rhs_depth);
            if depth > MAX_EXPR_DEPTH {
                self.too_deep(op_span);
                return None;
            }
            let span = lhs.span.to(rhs.span);
            lhs = match rule {
                Rule::pipe => self.pipe(lhs, rhs, op_span)?,
                _ => {
                    let op = match rule {
                        Rule::add => BinOp::Add,
                        Rule::sub => BinOp::Sub,
                        Rule::mul => BinOp::Mul,
                        Rule::div => BinOp::Div,
                        _ => BinOp::Pow,
                    };
                    Expr { kind: ExprKind::Binary(op, Box::new(lhs), Box::new(rhs)), span }
                }
            };
            lhs_depth = depth;
        }
        Some((lhs, lhs_depth))
    }

    /// `a |> f(b)` is `f(a, b)`; `a |> f` is `f(a)`.
    fn pipe(&mut self, lhs: Expr, rhs: Expr, op_span: Span) -> Option<Expr> {
        let span = lhs.span.to(rhs.span);
        let arg = Arg { name: None, value: lhs };
        let call = match rhs.kind {
            ExprKind::Call(mut call) => {
                call.args.insert(0, arg);
                call
            }
            ExprKind::Name(name) => Call { func: Ident { name, span: rhs.span }, args: vec![arg], piped: true, span },
            _ => {
                self.errors.push(
                    Diagnostic::error(Code::BadPipe, "the right side of `|>` must be a layer or a function")
                        .label(rhs.span, "this is not a layer or function name")
                        .label(op_span, "the value on the left is passed here")
                        .help("write a name such as `relu`, or a call such as `maxpool(2)`"),
                );
                return None;
            }
        };
        Some(Expr { kind: ExprKind::Call(Call { piped: true, span, ..call }), span })
    }

    fn operand(&mut self, p: Pair<Rule>) -> Option<Expr> {
        let span = span_of(&p);
        let kind = match p.as_rule() {
            Rule::number => ExprKind::Number(self.number(p.as_str(), span)?),
            Rule::string => ExprKind::Str(unescape(p.as_str())),
            Rule::boolean => ExprKind::Bool(p.as_str() == "true"),
            Rule::call => ExprKind::Call(self.call(p)?),
            Rule::list | Rule::tuple => {
                let is_tuple = p.as_rule() == Rule::tuple;
                let trailing_comma = p.as_str().trim_end_matches(')').trim_end().ends_with(',');
                let mut items = Vec::new();
                for e in p.into_inner() {
                    items.push(self.expr(e)?);
                }
                // `(a)` is grouping, `(a,)` and `[a]` are lists.
                if is_tuple && items.len() == 1 && !trailing_comma {
                    let mut e = items.pop()?;
                    e.span = span;
                    return Some(e);
                }
                ExprKind::List(items)
            }
            Rule::selector => {
                let text = p.as_str().to_string();
                if text.contains(['.', '*']) {
                    ExprKind::Selector(text)
                } else {
                    ExprKind::Name(text)
                }
            }
            _ => return None,
        };
        Some(Expr { kind, span })
    }

    fn number(&mut self, text: &str, span: Span) -> Option<f64> {
        let (digits, scale) = match text.strip_suffix('%') {
            Some(d) => (d, 0.01),
            None => (text, 1.0),
        };
        match digits.parse::<f64>() {
            Ok(v) if v.is_finite() => Some(v * scale),
            _ => {
                self.errors.push(
                    Diagnostic::error(Code::BadNumber, format!("number `{text}` is out of range"))
                        .label(span, "too large for a 64-bit float")
                        .help("numbers must be finite; the largest is about 1.8e308"),
                );
                None
            }
        }
    }
}

fn input_decl(p: Pair<Rule>) -> InputDecl {
    let span = span_of(&p);
    let mut it = p.into_inner();
    let name = it.next().map(ident).unwrap_or(Ident { name: String::new(), span });
    let mut dtype = Ident { name: String::new(), span };
    let mut dims = Vec::new();
    if let Some(ty) = it.next() {
        let mut t = ty.into_inner();
        if let Some(d) = t.next() {
            dtype = ident(d);
        }
        dims = t.map(|d| (d.as_str().parse::<u64>().ok(), span_of(&d))).collect();
    }
    InputDecl { name, dtype, dims, span }
}

/// The text of a string literal (quotes included) with its escapes resolved.
fn unescape(quoted: &str) -> String {
    let inner = quoted.strip_prefix('"').and_then(|s| s.strip_suffix('"')).unwrap_or(quoted);
    let mut out = String::with_capacity(inner.len());
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            match chars.next() {
                Some('n') => out.push('\n'),
                Some('t') => out.push('\t'),
                Some(other) => out.push(other),
                None => {}
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// Turns pest's failure into "expected …, found …" at the exact place.
fn syntax_error(src: &str, e: &pest::error::Error<Rule>) -> Diagnostic {
    use pest::error::{ErrorVariant, InputLocation};
    let pos = match e.location {
        InputLocation::Pos(p) => p,
        InputLocation::Span((s, _)) => s,
    }
    .min(src.len());
    let found = found_token(src, pos);
    let found_text =
        if found.is_empty() { "end of file".to_string() } else { format!("`{}`", &src[found.start..found.end]) };
    match &e.variant {
        ErrorVariant::ParsingError { positives, .. } => {
            let mut expected: Vec<String> = positives.iter().filter_map(|r| describe(*r)).map(str::to_string).collect();
            if let Some(attempts) = e.parse_attempts() {
                for t in attempts.expected_tokens() {
                    let t = t.to_string();
                    // pest does not export its token type; character ranges print as `a..z`.
                    if t.chars().count() == 4 && t.get(1..3) == Some("..") {
                        continue;
                    }
                    // Punctuation only: words come from the rules above, and whitespace,
                    // comments and separators are always allowed.
                    if t.is_empty() || t.trim().is_empty() || t.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                        continue;
                    }
                    match t.as_str() {
                        "//" | ";" | "\\" => {}
                        "+" | "-" | "*" | "/" | "^" | "|>" => expected.push("an operator".into()),
                        _ => expected.push(format!("`{t}`")),
                    }
                }
            }
            expected.sort();
            expected.dedup();
            if expected.iter().filter(|e| e.starts_with("`") && e.ends_with("`") && e.len() > 3).count() > 6 {
                expected.retain(|e| !(e.starts_with('`') && e.len() > 3));
                expected.push("a statement".to_string());
            }
            let message = if expected.is_empty() {
                format!("unexpected {found_text}")
            } else {
                format!("expected {}, found {found_text}", one_of(&expected))
            };
            let help = syntax_help(src, pos, &expected);
            Diagnostic::error(Code::Syntax, message).label(found, "unexpected here").maybe_help(help)
        }
        ErrorVariant::CustomError { message } => {
            let message = if message.contains("call limit") {
                format!("the parser gave up after {MAX_PARSE_CALLS} steps")
            } else {
                format!("the parser gave up: {message}")
            };
            Diagnostic::error(Code::TooDeep, message)
                .label(found, "here")
                .help("simplify the spec: nest fewer brackets and operators")
        }
    }
}

fn one_of(items: &[String]) -> String {
    match items {
        [] => String::new(),
        [one] => one.clone(),
        [init @ .., last] => format!("{} or {last}", init.join(", ")),
    }
}

fn syntax_help(src: &str, pos: usize, expected: &[String]) -> Option<String> {
    let rest = &src[pos..];
    if expected.iter().any(|e| e == "`]`" || e == "`)`" || e == "`}`") && rest.trim().is_empty() {
        return Some("a bracket is still open at the end of the file".into());
    }
    if rest.starts_with("**") || (rest.starts_with('*') && src[..pos].ends_with('*')) {
        return Some("powers are written `^`, as in `w^2`".into());
    }
    if rest.starts_with('\'') {
        return Some("strings use double quotes: \"mnist\"".into());
    }
    if found_is(rest, '}') && expected.iter().any(|e| e == "`)`") {
        return Some("a `(` is still open before this `}`".into());
    }
    let starts_operand = rest.starts_with(|c: char| c.is_ascii_alphanumeric() || c == '_' || c == '(');
    if starts_operand && expected.iter().any(|e| e == "`,`") {
        return Some("arguments are separated by commas: `dense(x, 300)`".into());
    }
    None
}

fn found_is(rest: &str, c: char) -> bool {
    rest.starts_with(c)
}

/// The token starting at `pos`: a word, a number, or one character (empty at the end).
fn found_token(src: &str, pos: usize) -> Span {
    let rest = &src[pos..];
    let Some(first) = rest.chars().next() else { return Span::new(pos, pos) };
    let len = if first.is_ascii_alphanumeric() || first == '_' {
        rest.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '.')).unwrap_or(rest.len())
    } else {
        first.len_utf8()
    };
    Span::new(pos, pos + len)
}

/// What a grammar rule means to a user, for "expected …".
fn describe(r: Rule) -> Option<&'static str> {
    use Rule::*;
    Some(match r {
        ident => "a name",
        expr | number | string | boolean | call | list | tuple | selector => "an expression",
        selector_list => "a selector such as `*.weight`",
        item | data_def | model_def | block_def | fn_def | train_def => "`data`, `model`, `block`, `fn` or `train`",
        block_params | block_param => "a block parameter such as `x` or `stride = 1`",
        binding_name => "a name",
        tensor_type => "a type such as `f32[784]`",
        dim => "a dimension",
        input_decl => "an input such as `x: f32[784]`",
        binding => "a layer binding such as `fc1 = dense(x, 300)`",
        return_stmt => "`return`",
        call_args => "`(`",
        arg => "an argument",
        fn_params => "a parameter name",
        pipe | add | sub | mul | div | pow => "an operator",
        group_kind => "`rows`, `columns` or `groups`",
        prune_below => "`below`",
        prune_sparsity => "`to sparsity`",
        prune_window => "`from epoch`",
        prune_every => "`every`",
        shrink => "`, then shrink`",
        gradually => "`gradually`",
        globally => "`globally`",
        EOI => "end of file",
        kw_data => "`data`",
        kw_model => "`model`",
        kw_fn => "`fn`",
        kw_train => "`train`",
        kw_on => "`on`",
        kw_return => "`return`",
        kw_phase => "`phase`",
        kw_prune => "`prune`",
        kw_gradually => "`gradually`",
        kw_below => "`below`",
        kw_to => "`to`",
        kw_sparsity => "`sparsity`",
        kw_globally => "`globally`",
        kw_from => "`from`",
        kw_epoch => "`epoch`",
        kw_every => "`every`",
        kw_steps => "`steps`",
        kw_epochs => "`epochs`",
        kw_then => "`then`",
        kw_shrink => "`shrink`",
        kw_scale => "`scale`",
        kw_normalize => "`normalize`",
        kw_random_crop => "`random_crop`",
        kw_hflip => "`hflip`",
        kw_batch => "`batch`",
        kw_loss => "`loss`",
        kw_seed => "`seed`",
        kw_shuffle => "`shuffle`",
        kw_init => "`init`",
        kw_checkpoint => "`checkpoint`",
        kw_validation => "`validation`",
        kw_optimizer => "`optimizer`",
        kw_lr_schedule => "`lr_schedule`",
        kw_penalty => "`penalty`",
        kw_masks => "`masks`",
        kw_coupled => "`coupled`",
        kw_param => "`param`",
        unknown_stmt | phase_def | prune_stmt | batch_stmt | loss_stmt | seed_stmt | shuffle_stmt | init_stmt
        | checkpoint_stmt | validation_stmt | epochs_stmt | optimizer_stmt | lr_schedule_stmt | penalty_stmt
        | masks_stmt | scale_stmt | normalize_stmt | random_crop_stmt | hflip_stmt => "a statement",
        _ => return None,
    })
}
