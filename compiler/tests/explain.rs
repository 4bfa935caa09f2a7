//! Every code's corrected example is a spec that checks cleanly, and the prelude is valid.

use hoyer_front::codes::Code;

#[test]
fn every_example_checks_cleanly() {
    for c in Code::ALL {
        assert!(!c.explanation().trim().is_empty(), "{c} has no explanation");
        match hoyer_front::check_source(c.example()) {
            Ok(checked) => assert!(checked.warnings.is_empty(), "{c}: example warns: {:?}", checked.warnings),
            Err(d) => panic!("{c}: example does not check: {d:#?}"),
        }
    }
}

#[test]
fn codes_are_unique_and_well_formed() {
    let mut seen = std::collections::HashSet::new();
    for c in Code::ALL {
        let s = c.as_str();
        assert!(seen.insert(s), "{s} twice");
        assert!(
            s.len() == 5 && (s.starts_with('E') || s.starts_with('W')) && s[1..].bytes().all(|b| b.is_ascii_digit())
        );
    }
}

#[test]
fn prelude_defines_the_standard_regularizers() {
    let prelude = hoyer_front::prelude();
    let names: Vec<&str> = prelude
        .items
        .iter()
        .filter_map(|i| if let hoyer_front::syntax::ast::Item::Fn(f) = i { Some(f.name.name.as_str()) } else { None })
        .collect();
    for wanted in ["l1", "l2", "hoyer", "hoyer_square", "group_hs", "group_lasso", "transformed_l1"] {
        assert!(names.contains(&wanted), "prelude lacks {wanted}");
    }
}
