//! Answer extraction and normalisation: the cases that break graders in practice (nested braces,
//! several boxes, truncated boxes, LaTeX fractions, thousands separators, units, `$...$`).

use sfn_eval::answer::{answer_key, answers_match, extract_answer, last_boxed, normalize_answer, AnswerSource};
use sfn_eval::grade;

fn extracted(text: &str) -> Option<(String, AnswerSource)> {
    extract_answer(text).map(|e| (e.text, e.source))
}

#[test]
fn boxed_with_nested_braces_keeps_the_whole_content() {
    assert_eq!(last_boxed(r"so \boxed{\frac{a^{2}}{b_{1}}} done"), Some(r"\frac{a^{2}}{b_{1}}"));
    assert_eq!(last_boxed(r"\boxed{\{1, 2\}}"), Some(r"\{1, 2\}"));
    assert_eq!(last_boxed(r"\boxed {42}"), Some("42"));
    assert_eq!(last_boxed(r"$\boxed 7$"), Some("7"));
    assert_eq!(last_boxed(r"\fbox{9}"), Some("9"));
}

#[test]
fn the_last_of_several_boxes_wins() {
    let text = r"First try \boxed{12}. Wait, that is wrong. Redo: \boxed{\frac{3}{4}} and finally \boxed{204}.";
    assert_eq!(extracted(text), Some(("204".into(), AnswerSource::Boxed)));
}

#[test]
fn a_box_cut_off_by_the_token_limit_falls_back_to_the_previous_one() {
    assert_eq!(last_boxed(r"\boxed{5} then \boxed{\frac{1}{"), Some("5"));
}

#[test]
fn no_box_falls_back_to_the_final_number() {
    assert_eq!(
        extracted("Adding gives 12, then 30 - 7 = 23. So he has 23 marbles."),
        Some(("23".into(), AnswerSource::LastNumber))
    );
    assert_eq!(extracted("The result is -5."), Some(("-5".into(), AnswerSource::LastNumber)));
    assert_eq!(extracted("10-5 is what remains"), Some(("5".into(), AnswerSource::LastNumber)));
    assert_eq!(extracted("a total of 1,000 people"), Some(("1,000".into(), AnswerSource::LastNumber)));
    assert_eq!(extracted(r"so $AP = \frac{100}{13}$"), Some((r"\frac{100}{13}".into(), AnswerSource::LastNumber)));
    assert_eq!(extracted("I do not know."), None);
    assert_eq!(extracted(""), None);
}

#[test]
fn latex_fractions_compare_as_numbers() {
    assert!(answers_match(r"\frac{1}{2}", "0.5"));
    assert!(answers_match(r"\dfrac{3}{6}", "1/2"));
    assert!(answers_match(r"\tfrac{2}{4}", r"\frac{1}{2}"));
    assert!(answers_match(r"\frac12", "0.5"));
    assert!(answers_match(r"-\frac{7}{2}", "-3.5"));
    assert!(!answers_match(r"\frac{1}{3}", "0.33"));
}

#[test]
fn thousands_separators_in_every_spelling() {
    assert!(answers_match("$1{,}000$", "1000"));
    assert!(answers_match("1,000", "1000"));
    assert!(answers_match(r"1\,000", "1000"));
    assert!(answers_match("6,000,000", "6000000"));
    assert_eq!(normalize_answer("$1{,}000$"), "1,000");
}

#[test]
fn units_and_surrounding_text_are_ignored_around_a_number() {
    assert!(answers_match("204 minutes", "204"));
    assert!(answers_match(r"204 \text{ minutes}", "204"));
    assert!(answers_match(r"\text{The answer is } 204.", "204"));
    assert!(answers_match("x = 25", "25"));
    assert!(answers_match("m+n=116", "116"));
    assert!(answers_match(r"90^\circ", "90"));
    assert!(answers_match(r"90^{\circ}", "90"));
    assert!(answers_match(r"50\%", "50"));
    assert!(answers_match(r"\$20", "20"));
    assert!(answers_match("17 coins", "17"));
    assert!(answers_match(r"25 \text{ (the product)}", "25"));
    // two numbers among the words: ambiguous, so not a number
    assert!(!answers_match("204 minutes or 3 hours", "204"));
}

#[test]
fn trailing_zeros_and_leading_zeros_do_not_matter() {
    assert!(answers_match("204.0", "204"));
    assert!(answers_match("204.", "204"));
    assert!(answers_match("033", "33"));
    assert!(answers_match("2.50", "5/2"));
}

#[test]
fn symbolic_answers_compare_as_normalised_strings() {
    assert!(answers_match(r"\left( 1, 2 \right)", "(1,2)"));
    assert!(answers_match(r"$\sqrt{2}$", r"\sqrt{2}"));
    assert!(!answers_match(r"\sqrt{3}", r"\sqrt{2}"));
    assert!(answers_match(r"\text{(B)}", "(B)"));
}

#[test]
fn gsm8k_style_gold_answers_use_the_part_after_the_hashes() {
    assert!(answers_match("72", "Natalia sold 48/2 = 24 clips in May.\n#### 72"));
}

#[test]
fn grading_end_to_end() {
    let g = grade(r"The walk takes $180 + 24$ minutes, so \boxed{204 \text{ minutes}}.", Some("204"));
    assert_eq!(g.correct, Some(true));
    assert_eq!(g.extracted.unwrap().text, r"204 \text{ minutes}");
    assert_eq!(grade("no idea", Some("204")).correct, Some(false));
    assert_eq!(grade(r"\boxed{3}", None).correct, None);
}

#[test]
fn vote_keys_merge_equal_values() {
    assert_eq!(answer_key(r"\frac{1}{2}"), answer_key("0.5"));
    assert_eq!(answer_key("1{,}000"), answer_key("1000"));
    assert_ne!(answer_key("3"), answer_key("4"));
}
