//! Views of values: how the movement ops above a value (broadcast, permute, reshape, window)
//! compose into one strided view, with guards, of a value in memory; and where they cannot
//! (then `materialize` writes the operand to memory first).
//!
//! A view here is over the axes of the value it stands for; `View::on_domain` places it on a
//! kernel's domain.

use super::{Fill, Guard, View};
use hoyer_ir::{Graph, Op, Slide, ValueId};

/// Where an operand's elements come from: a constant, or a view of a value in memory.
#[derive(Debug, Clone, PartialEq)]
pub enum Source {
    Const(f64),
    View { root: ValueId, view: View },
}

/// Composes the movement ops above `v` into one view of the value in memory, or says why
/// they do not compose.
pub fn source(g: &Graph, v: ValueId) -> Result<Source, String> {
    let value = g.value(v);
    let inner = |x: ValueId| -> Result<Option<(ValueId, View)>, String> {
        Ok(match source(g, x)? {
            Source::Const(_) => None,
            Source::View { root, view } => Some((root, view)),
        })
    };
    let composed = match &value.op {
        Op::Const(c) => return Ok(Source::Const(*c)),
        Op::Broadcast { input, dims } => inner(*input)?.map(|(r, view)| {
            let rank = value.shape.len();
            (r, view.map_axes(rank, |i| Some(dims[i])))
        }),
        Op::Permute { input, perm } => inner(*input)?.map(|(r, view)| {
            let mut inverse = vec![0; perm.len()];
            for (i, &p) in perm.iter().enumerate() {
                inverse[p] = i;
            }
            (r, view.map_axes(perm.len(), |i| Some(inverse[i])))
        }),
        Op::Reshape(x) => match inner(*x)? {
            Some((r, view)) => Some((r, reshape(&view, g.shape(*x), &value.shape)?)),
            None => None,
        },
        Op::Window { input, axes, slides, fill } => {
            inner(*input)?.map(|(r, view)| (r, window(&view, g.shape(*input), axes, slides, *fill)))
        }
        Op::Slice { input, axis, start } => {
            inner(*input)?.map(|(r, view)| (r, slice(&view, g.shape(*input)[*axis], *axis, *start, value.shape[*axis])))
        }
        _ => return Ok(Source::View { root: v, view: View::contiguous(&value.shape) }),
    };
    Ok(match composed {
        Some((root, view)) => Source::View { root, view },
        // A movement of a constant is the constant.
        None => match source(g, value.op.operands()[0])? {
            Source::Const(c) => Source::Const(c),
            Source::View { .. } => unreachable!("inner gave no view"),
        },
    })
}

impl View {
    /// The same view over `rank` axes, where axis `i` of this one becomes axis `place(i)`
    /// (`None`: dropped, for axes whose coordinate is always 0).
    pub fn map_axes(&self, rank: usize, place: impl Fn(usize) -> Option<usize>) -> View {
        let spread = |from: &[i64]| {
            let mut out = vec![0; rank];
            for (i, &x) in from.iter().enumerate() {
                if let Some(d) = place(i) {
                    out[d] = x;
                }
            }
            out
        };
        View {
            offset: self.offset,
            strides: spread(&self.strides),
            guards: self.guards.iter().map(|g| Guard { coeffs: spread(&g.coeffs), ..g.clone() }).collect(),
        }
    }
}

/// A view of a value of shape `old` reshaped to `new`: strides and every guard's
/// coefficients are linear forms of the coordinates, and reshape each the same way.
fn reshape(view: &View, old: &[usize], new: &[usize]) -> Result<View, String> {
    let fail = || format!("a reshape of a non-contiguous view ({old:?} to {new:?})");
    let strides = reshape_strides(old, &view.strides, new).ok_or_else(fail)?;
    let mut guards = Vec::with_capacity(view.guards.len());
    for g in &view.guards {
        let coeffs = reshape_strides(old, &g.coeffs, new).ok_or_else(fail)?;
        guards.push(Guard { coeffs, ..g.clone() });
    }
    Ok(View { offset: view.offset, strides, guards })
}

/// The strides of a view of `old` (with `strides`) reshaped to `new`, where one strided view
/// can express it: axes split, and adjacent axes merged where they are laid out as one.
pub fn reshape_strides(old: &[usize], strides: &[i64], new: &[usize]) -> Option<Vec<i64>> {
    // Old axes as (extent, stride), size-1 axes dropped (their stride is irrelevant).
    let mut rest: Vec<(usize, i64)> = old.iter().zip(strides).filter(|(&n, _)| n != 1).map(|(&n, &s)| (n, s)).collect();
    rest.reverse(); // a stack: the outermost axis last
    let mut out = Vec::with_capacity(new.len());
    for &n in new {
        if n == 1 {
            out.push(0);
            continue;
        }
        // Merge old axes until the top of the stack holds at least n elements.
        loop {
            let &(e, s) = rest.last()?;
            if e >= n {
                break;
            }
            rest.pop();
            let (e2, s2) = rest.pop()?;
            if s != s2 * e2 as i64 {
                return None;
            }
            rest.push((e * e2, s2));
        }
        let (e, s) = rest.pop()?;
        if e % n != 0 {
            return None;
        }
        let inner = e / n;
        out.push(s * inner as i64);
        if inner > 1 {
            rest.push((inner, s));
        }
    }
    rest.is_empty().then_some(out)
}

/// The windows of a value of `shape` seen through `view`. Along a windowed axis, position
/// `o` and element `j` read coordinate `o·s + j·d − p`: a linear form, so strides and guards
/// carry over; with padding the coordinate may fall outside, and a new guard (checked
/// before the inner ones: the padding is outermost) gives the fill there.
fn window(view: &View, shape: &[usize], axes: &[usize], slides: &[Slide], fill: Fill) -> View {
    let rank = shape.len();
    let out_rank = rank + axes.len();
    // A linear form over the input's axes, as one over the windows' axes, and its constant.
    let spread = |form: &[i64]| -> (Vec<i64>, i64) {
        let mut out = vec![0; out_rank];
        let mut constant = 0;
        for a in 0..rank {
            match axes.iter().position(|&x| x == a) {
                Some(w) => {
                    let s = &slides[w];
                    out[a] = form[a] * s.stride as i64;
                    out[rank + w] = form[a] * s.dilation as i64;
                    constant -= form[a] * s.padding as i64;
                }
                None => out[a] = form[a],
            }
        }
        (out, constant)
    };
    let mut guards = Vec::new();
    let mut plain = view.strides.clone();
    for (w, (&a, s)) in axes.iter().zip(slides).enumerate() {
        if s.padding == 0 {
            continue; // every coordinate is inside: positions count only windows that fit
        }
        let mut coeffs = vec![0; out_rank];
        coeffs[a] = s.stride as i64;
        coeffs[rank + w] = s.dilation as i64;
        guards.push(Guard {
            coeffs,
            constant: -(s.padding as i64),
            divisor: 1,
            extent: shape[a] as i64,
            stride: view.strides[a],
            fill,
        });
        plain[a] = 0; // the guard carries this axis's part of the address
    }
    let (strides, constant) = spread(&plain);
    for g in &view.guards {
        let (coeffs, c) = spread(&g.coeffs);
        guards.push(Guard { coeffs, constant: g.constant + c, ..g.clone() });
    }
    View { offset: view.offset + constant, strides, guards }
}

/// `len` coordinates along `axis` (of `extent`) from `start` on, seen through `view`: output
/// coordinate `i` is input coordinate `i + start`, a shift of every linear form in the view.
/// Where that may fall outside (a pad), a new guard, checked first, gives 0 there.
fn slice(view: &View, extent: usize, axis: usize, start: i64, len: usize) -> View {
    let shifted = |g: &Guard| Guard { constant: g.constant + g.coeffs[axis] * start, ..g.clone() };
    let mut guards: Vec<Guard> = Vec::with_capacity(view.guards.len() + 1);
    let mut strides = view.strides.clone();
    let mut offset = view.offset;
    if start < 0 || start + len as i64 > extent as i64 {
        let mut coeffs = vec![0; strides.len()];
        coeffs[axis] = 1;
        guards.push(Guard {
            coeffs,
            constant: start,
            divisor: 1,
            extent: extent as i64,
            stride: strides[axis],
            fill: Fill::Zero,
        });
        strides[axis] = 0; // the guard carries this axis's part of the address
    } else {
        offset += start * strides[axis];
    }
    guards.extend(view.guards.iter().map(shifted));
    View { offset, strides, guards }
}

/// How the adjoint of `Window` reads its input (windows of a value of rank `rank`, seen
/// through `view`) over a domain of the result's axes followed by the window's own axes:
/// at result coordinate `h` and window element `j`, window position `(h + p − j·d) / s`,
/// which exists only where the division is exact and lands inside.
pub fn unwindow_view(view: &View, windows: &[usize], axes: &[usize], slides: &[Slide]) -> Result<View, String> {
    let rank = windows.len() - axes.len();
    let mut strides = view.strides.clone();
    let mut guards = Vec::new();
    for (w, (&a, s)) in axes.iter().zip(slides).enumerate() {
        let mut coeffs = vec![0; windows.len()];
        coeffs[a] = 1;
        coeffs[rank + w] = -(s.dilation as i64);
        guards.push(Guard {
            coeffs,
            constant: s.padding as i64,
            divisor: s.stride as i64,
            extent: windows[a] as i64,
            stride: view.strides[a],
            fill: Fill::Zero,
        });
        strides[a] = 0;
    }
    for g in &view.guards {
        if axes.iter().any(|&a| g.coeffs[a] != 0) {
            return Err("the adjoint of windows of a guarded view".into());
        }
        guards.push(g.clone());
    }
    Ok(View { offset: view.offset, strides, guards })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reshape_views() {
        // Contiguous [2, 3, 4] to [6, 4] and [24]; a transposed [3, 2] cannot be flattened.
        assert_eq!(reshape_strides(&[2, 3, 4], &[12, 4, 1], &[6, 4]), Some(vec![4, 1]));
        assert_eq!(reshape_strides(&[2, 3, 4], &[12, 4, 1], &[24]), Some(vec![1]));
        assert_eq!(reshape_strides(&[6], &[1], &[2, 1, 3]), Some(vec![3, 0, 1]));
        assert_eq!(reshape_strides(&[3, 2], &[1, 3], &[6]), None);
        // A broadcast stays a broadcast.
        assert_eq!(reshape_strides(&[4, 5], &[0, 0], &[20]), Some(vec![0]));
        assert_eq!(reshape_strides(&[4, 5], &[0, 1], &[2, 2, 5]), Some(vec![0, 0, 1]));
    }

    /// Slices and pads, alone and of a padded window's view, against the interpreter.
    #[test]
    fn slices_of_views_match_the_interpreter() {
        use hoyer_ir::interp::{run, Precision};
        let slide = Slide { size: 3, stride: 1, padding: 1, dilation: 1 };
        let cases: [(Vec<usize>, usize, i64, usize, bool); 4] = [
            (vec![3, 5], 1, 1, 3, false),
            (vec![3, 5], 1, -2, 8, false),
            (vec![3, 5], 0, 2, 3, false),
            (vec![2, 6], 1, -1, 5, true),
        ];
        for (shape, axis, start, len, windowed) in cases {
            let mut g = Graph::default();
            let x = g.input_value(hoyer_ir::Role::param("x"), shape.clone());
            let from = if windowed { g.window(x, vec![1], vec![slide], Fill::Zero) } else { x };
            let y = g.slice(from, axis, start, len);
            let Ok(Source::View { view, .. }) = source(&g, y) else { panic!("a view") };
            let xs: Vec<f64> = (0..hoyer_ir::numel(&shape)).map(|i| i as f64 + 1.0).collect();
            let want = &run(&g, &[(hoyer_ir::Role::param("x"), xs.clone())].into_iter().collect(), Precision::F64)
                .unwrap()[y.index()];
            let out = g.shape(y).to_vec();
            let st = hoyer_ir::interp::strides(&out);
            for (flat, w) in want.iter().enumerate() {
                let point: Vec<i64> = out.iter().zip(&st).map(|(&n, &s)| ((flat / s) % n) as i64).collect();
                let got = view.element(&point).map_or(0.0, |e| xs[e as usize]);
                assert_eq!(got, *w, "{shape:?} axis {axis} from {start} at {point:?}");
            }
        }
    }

    /// Every element of a composed view against the interpreter's windows.
    #[test]
    fn windows_of_views_match_the_interpreter() {
        use hoyer_ir::interp::{strides, window_sources};
        let slide = |size, stride, padding, dilation| Slide { size, stride, padding, dilation };
        let cases = [
            (vec![2, 6, 5], vec![1, 2], vec![slide(3, 1, 1, 1), slide(2, 2, 0, 1)]),
            (vec![1, 7, 7, 2], vec![1, 2], vec![slide(3, 2, 1, 1), slide(3, 2, 1, 2)]),
            (vec![3, 4], vec![1], vec![slide(2, 2, 0, 1)]),
        ];
        for (shape, axes, slides) in cases {
            let mut g = Graph::default();
            let x = g.input_value(hoyer_ir::Role::param("x"), shape.clone());
            let w = g.window(x, axes.clone(), slides.clone(), Fill::NegInf);
            let Ok(Source::View { view, .. }) = source(&g, w) else { panic!("a view") };
            let out_shape = g.shape(w).to_vec();
            let st = strides(&out_shape);
            for (flat, want) in window_sources(&shape, &axes, &slides).into_iter().enumerate() {
                let point: Vec<i64> = out_shape.iter().zip(&st).map(|(&n, &s)| ((flat / s) % n) as i64).collect();
                let got = view.element(&point).ok().map(|e| e as usize);
                assert_eq!(got, want, "{shape:?} {axes:?} at {point:?}");
            }
            // And the adjoint's view finds, for each element, the windows that read it.
            let view = unwindow_view(&View::contiguous(&out_shape), &out_shape, &axes, &slides).unwrap();
            let domain: Vec<usize> = shape.iter().chain(slides.iter().map(|s| &s.size)).copied().collect();
            let ds = strides(&domain);
            let sources = window_sources(&shape, &axes, &slides);
            let mut found = 0;
            for flat in 0..hoyer_ir::numel(&domain) {
                let point: Vec<i64> = domain.iter().zip(&ds).map(|(&n, &s)| ((flat / s) % n) as i64).collect();
                if let Ok(e) = view.element(&point) {
                    let target: usize = strides(&shape).iter().enumerate().map(|(a, s)| point[a] as usize * s).sum();
                    assert_eq!(sources[e as usize], Some(target), "{shape:?} {axes:?} at {point:?}");
                    found += 1;
                }
            }
            assert_eq!(found, sources.iter().flatten().count(), "every window element that reads something");
        }
    }
}
