//! Scenario tests through the SDK harness: a config, an input, and the
//! expected output, configure error or row error.

use credvault_sdk::testing::{run_transform, run_transform_with};
use credvault_sdk::{Column, ColumnType, Outcome, RowError, Schema, Value};

use crate::Expr;

/// 1815-12-10 as days since 1970-01-01.
const BORN: i32 = -56_270;
/// 2020-03-05T12:34:56 as µs since the epoch.
const SEEN: i64 = 1_583_411_696_000_000;

fn schema() -> Schema {
    vec![
        Column::new("name", ColumnType::Text).not_null(),
        Column::new("age", ColumnType::Int).not_null(),
        Column::new("price", ColumnType::Float),
        Column::new("amount", ColumnType::Decimal),
        Column::new("active", ColumnType::Boolean),
        Column::new("born", ColumnType::Date),
        Column::new("seen", ColumnType::Timestamp),
        Column::new("nothing", ColumnType::Text),
        Column::new("no_int", ColumnType::Int),
        Column::new("birth_year", ColumnType::Text),
        Column::new("us_date", ColumnType::Text),
        Column::new("odd name", ColumnType::Text),
    ]
}

fn row() -> Vec<Value> {
    vec![
        "  Ada Lovelace ".into(),
        Value::Int(36),
        Value::Float(2.5),
        Value::Decimal("10.25".into()),
        Value::Boolean(true),
        Value::Date(BORN),
        Value::Timestamp(SEEN),
        Value::Null,
        Value::Null,
        "1990".into(),
        "03/05/2020".into(),
        "x".into(),
    ]
}

fn config(exprs: &[&str]) -> String {
    format!(r#"{{"expressions": {exprs:?}}}"#)
}

fn run(exprs: &[&str]) -> Result<(Schema, Vec<Outcome>), String> {
    run_transform::<Expr>(&config(exprs), schema(), vec![row()])
}

/// The value `out = <expr>` gives for the standard row.
fn value(expr: &str) -> Value {
    let (_, out) = run(&[&format!("out = {expr}")]).unwrap_or_else(|e| panic!("{e}"));
    match out.into_iter().next().unwrap() {
        Outcome::Keep(mut values) => values.pop().unwrap(),
        other => panic!("{expr}: {other:?}"),
    }
}

/// The output column type and nullability of `out = <expr>`.
fn column(expr: &str) -> (ColumnType, bool) {
    let (schema, _) = run(&[&format!("out = {expr}")]).unwrap_or_else(|e| panic!("{e}"));
    let c = schema.last().unwrap();
    (c.type_, c.nullable)
}

/// The row error `out = <expr>` gives for the standard row.
fn row_error(expr: &str) -> RowError {
    let (_, out) = run(&[&format!("out = {expr}")]).unwrap_or_else(|e| panic!("{e}"));
    match out.into_iter().next().unwrap() {
        Outcome::Error(e) => e,
        other => panic!("{expr}: expected an error, got {other:?}"),
    }
}

/// The first line of the configure error of `out = <expr>`.
fn config_error(expr: &str) -> String {
    let err = run(&[&format!("out = {expr}")]).expect_err(expr);
    err.lines().next().unwrap().to_string()
}

/// Checks each `(expr, first line of the configure error)`, reporting all
/// mismatches at once.
fn check_config_errors(cases: &[(&str, &str)]) {
    let mut wrong = Vec::new();
    for (expr, want) in cases {
        let want = format!("expression 1 {:?}: {want}", format!("out = {expr}"));
        let got = config_error(expr);
        if got != want {
            wrong.push(format!("{expr}\n   got: {got}\n  want: {want}"));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

fn text(s: &str) -> Value {
    Value::Text(s.into())
}

#[test]
fn literals() {
    assert_eq!(value("42"), Value::Int(42));
    assert_eq!(value("4.5"), Value::Float(4.5));
    assert_eq!(value("1e3"), Value::Float(1000.0));
    assert_eq!(value("'it''s'"), text("it's"));
    assert_eq!(value("''"), text(""));
    assert_eq!(value("true"), Value::Boolean(true));
    assert_eq!(value("FALSE"), Value::Boolean(false));
    assert_eq!(value("null"), Value::Null);
    assert_eq!(value("\"odd name\""), text("x"));
    assert_eq!(column("null"), (ColumnType::Text, true));
    assert_eq!(column("42"), (ColumnType::Int, false));
}

#[test]
fn arithmetic_and_promotion() {
    assert_eq!(value("age + 1"), Value::Int(37));
    assert_eq!(value("age - 40"), Value::Int(-4));
    assert_eq!(value("age * 2"), Value::Int(72));
    assert_eq!(value("age % 5"), Value::Int(1));
    assert_eq!(value("-age % 5"), Value::Int(-1));
    assert_eq!(value("7 / 2"), Value::Float(3.5));
    assert_eq!(value("age + price"), Value::Float(38.5));
    assert_eq!(value("amount + 1"), Value::Float(11.25));
    assert_eq!(value("amount * price"), Value::Float(25.625));
    assert_eq!(value("price % 2"), Value::Float(0.5));
    assert_eq!(value("-price"), Value::Float(-2.5));
    assert_eq!(value("-amount"), Value::Float(-10.25));
    assert_eq!(column("age + 1"), (ColumnType::Int, false));
    assert_eq!(column("age / 1"), (ColumnType::Float, false));
    assert_eq!(column("age + price"), (ColumnType::Float, true));
    assert_eq!(column("amount + 0"), (ColumnType::Float, true));
}

#[test]
fn precedence_and_associativity() {
    assert_eq!(value("1 + 2 * 3"), Value::Int(7));
    assert_eq!(value("(1 + 2) * 3"), Value::Int(9));
    assert_eq!(value("2 - 3 - 4"), Value::Int(-5));
    assert_eq!(value("12 / 2 / 3"), Value::Float(2.0));
    assert_eq!(value("-2 * 3"), Value::Int(-6));
    assert_eq!(value("- -2"), Value::Int(2));
    assert_eq!(value("1 + 2 == 3 and 2 > 1"), Value::Boolean(true));
    assert_eq!(value("true or false and false"), Value::Boolean(true));
    assert_eq!(value("(true or false) and false"), Value::Boolean(false));
    assert_eq!(value("not true or true"), Value::Boolean(true));
    assert_eq!(value("not 1 == 2"), Value::Boolean(true));
    assert_eq!(value("not active and active"), Value::Boolean(false));
    assert_eq!(value("1 + if active then 1 else 2"), Value::Int(2));
}

#[test]
fn comparisons() {
    assert_eq!(value("age == 36"), Value::Boolean(true));
    assert_eq!(value("age != 36"), Value::Boolean(false));
    assert_eq!(value("age <> 35"), Value::Boolean(true));
    assert_eq!(value("age < 36.5"), Value::Boolean(true));
    assert_eq!(value("age <= 36"), Value::Boolean(true));
    assert_eq!(value("price > 2"), Value::Boolean(true));
    assert_eq!(value("amount >= 10.25"), Value::Boolean(true));
    assert_eq!(value("'abc' < 'abd'"), Value::Boolean(true));
    assert_eq!(value("birth_year == '1990'"), Value::Boolean(true));
    assert_eq!(value("active == true"), Value::Boolean(true));
    assert_eq!(value("born < current_date()"), Value::Boolean(true));
    assert_eq!(value("born < seen"), Value::Boolean(true));
    assert_eq!(
        value("parse_date('2020-03-05', 'YYYY-MM-DD') <= seen"),
        Value::Boolean(true)
    );
    assert_eq!(column("age == 36"), (ColumnType::Boolean, false));
}

#[test]
fn null_semantics() {
    assert_eq!(value("no_int + 1"), Value::Null);
    assert_eq!(value("-no_int"), Value::Null);
    assert_eq!(value("null * 2"), Value::Null);
    assert_eq!(value("upper(nothing)"), Value::Null);
    assert_eq!(value("substr(name, no_int)"), Value::Null);
    assert_eq!(value("nothing == nothing"), Value::Null);
    assert_eq!(value("no_int < 3"), Value::Null);
    assert_eq!(value("if nothing == 'x' then 1 else 2"), Value::Int(2));
    assert_eq!(value("if null then 1 else 2"), Value::Int(2));
    assert_eq!(value("concat('a', nothing, 'b')"), text("ab"));
    assert_eq!(value("concat(nothing)"), text(""));
    assert_eq!(value("coalesce(nothing, 'x')"), text("x"));
    assert_eq!(value("coalesce(nothing, null)"), Value::Null);
    assert_eq!(value("null and false"), Value::Boolean(false));
    assert_eq!(value("null and true"), Value::Null);
    assert_eq!(value("null or true"), Value::Boolean(true));
    assert_eq!(value("null or false"), Value::Null);
    assert_eq!(value("not null"), Value::Null);
    assert_eq!(column("upper(nothing)"), (ColumnType::Text, true));
    assert_eq!(column("upper(name)"), (ColumnType::Text, false));
    assert_eq!(column("concat(nothing)"), (ColumnType::Text, false));
    assert_eq!(column("coalesce(nothing, 'x')"), (ColumnType::Text, false));
}

#[test]
fn if_then_else() {
    assert_eq!(value("if age > 30 then 'old' else 'young'"), text("old"));
    assert_eq!(
        value("if age > 40 then 'a' else if age > 30 then 'b' else 'c'"),
        text("b")
    );
    assert_eq!(
        value("if if active then false else true then 1 else 2"),
        Value::Int(2)
    );
    // Branches of int and float unify to float, with the int converted.
    assert_eq!(value("if active then 1 else 2.5"), Value::Float(1.0));
    assert_eq!(
        column("if active then 1 else 2.5"),
        (ColumnType::Float, false)
    );
    assert_eq!(value("if active then null else 1"), Value::Null);
    assert_eq!(
        column("if active then null else 1"),
        (ColumnType::Int, true)
    );
}

#[test]
fn text_functions() {
    assert_eq!(value("upper(name)"), text("  ADA LOVELACE "));
    assert_eq!(value("lower(name)"), text("  ada lovelace "));
    assert_eq!(value("strip(name)"), text("Ada Lovelace"));
    assert_eq!(value("trim(name)"), text("Ada Lovelace"));
    assert_eq!(value("UPPER(strip(name))"), text("ADA LOVELACE"));
    assert_eq!(value("length(strip(name))"), Value::Int(12));
    assert_eq!(value("length('héllo')"), Value::Int(5));
    assert_eq!(
        value("concat(strip(name), ' (', age, ', ', price, ', ', active, ')')"),
        text("Ada Lovelace (36, 2.5, true)")
    );
    assert_eq!(value("concat(born, ' ', amount)"), text("1815-12-10 10.25"));
}

#[test]
fn substr_counts_characters_from_one() {
    assert_eq!(value("substr('héllo', 2)"), text("éllo"));
    assert_eq!(value("substr('héllo', 2, 3)"), text("éll"));
    assert_eq!(value("substr('hello', 1, 0)"), text(""));
    assert_eq!(value("substr('hello', 4, 10)"), text("lo"));
    assert_eq!(value("substr('hello', 9)"), text(""));
    assert_eq!(value("substr('hello', 0, 2)"), text("h"));
    assert_eq!(value("substr('hello', -1, 3)"), text("h"));
    let e = row_error("substr('hello', 1, -1)");
    assert_eq!(e.message, "substr needs a length of 0 or more, got -1");
}

#[test]
fn replace_and_coalesce() {
    assert_eq!(value("replace('a-b-c', '-', '+')"), text("a+b+c"));
    assert_eq!(value("replace('abc', '', '+')"), text("abc"));
    assert_eq!(value("replace('abc', 'x', '+')"), text("abc"));
    assert_eq!(value("replace(nothing, 'x', '+')"), Value::Null);
    assert_eq!(value("coalesce(no_int, age)"), Value::Int(36));
    assert_eq!(value("coalesce(no_int, price)"), Value::Float(2.5));
    assert_eq!(column("coalesce(no_int, price)"), (ColumnType::Float, true));
    assert_eq!(value("coalesce(no_int, 7)"), Value::Int(7));
}

#[test]
fn number_functions() {
    assert_eq!(value("round(2.567, 2)"), Value::Float(2.57));
    assert_eq!(value("round(2.5)"), Value::Float(3.0));
    assert_eq!(value("round(-2.5)"), Value::Float(-3.0));
    assert_eq!(value("round(1250, -2)"), Value::Int(1300));
    assert_eq!(value("round(age)"), Value::Int(36));
    assert_eq!(value("round(amount, 1)"), Value::Float(10.3));
    assert_eq!(value("abs(-3)"), Value::Int(3));
    assert_eq!(value("abs(-price)"), Value::Float(2.5));
    assert_eq!(column("round(amount, 1)"), (ColumnType::Float, true));
}

#[test]
fn conversions() {
    assert_eq!(value("to_int(birth_year)"), Value::Int(1990));
    assert_eq!(value("to_int(' -12 ')"), Value::Int(-12));
    assert_eq!(value("to_int(price)"), Value::Int(2));
    assert_eq!(value("to_int(-price)"), Value::Int(-2));
    assert_eq!(value("to_int(amount)"), Value::Int(10));
    assert_eq!(value("to_int(active)"), Value::Int(1));
    assert_eq!(value("to_float('1.5')"), Value::Float(1.5));
    assert_eq!(value("to_float(age)"), Value::Float(36.0));
    assert_eq!(value("to_float(amount)"), Value::Float(10.25));
    assert_eq!(value("to_text(age)"), text("36"));
    assert_eq!(value("to_text(price)"), text("2.5"));
    assert_eq!(value("to_text(3.0)"), text("3"));
    assert_eq!(value("to_text(1e20)"), text("1e20"));
    assert_eq!(value("to_text(0.000001)"), text("0.000001"));
    assert_eq!(value("to_text(active)"), text("true"));
    assert_eq!(value("to_text(born)"), text("1815-12-10"));
    assert_eq!(value("to_text(seen)"), text("2020-03-05 12:34:56"));
    assert_eq!(value("to_text(amount)"), text("10.25"));
    assert_eq!(value("to_text(nothing)"), Value::Null);
}

#[test]
fn dates() {
    assert_eq!(
        value("parse_date(us_date, 'MM/DD/YYYY')"),
        Value::Date(18_326)
    );
    assert_eq!(
        value("parse_date('20200305', 'YYYYMMDD')"),
        Value::Date(18_326)
    );
    assert_eq!(
        value("parse_timestamp('2020-03-05T12:34:56', 'YYYY-MM-DDTHH:mm:ss')"),
        Value::Timestamp(SEEN)
    );
    assert_eq!(
        value("parse_timestamp('05.03.20', 'DD.MM.YY')"),
        Value::Timestamp(1_583_366_400_000_000)
    );
    assert_eq!(value("format_date(born, 'DD/MM/YYYY')"), text("10/12/1815"));
    assert_eq!(
        value("format_date(seen, 'YY-MM-DD HH:mm:ss')"),
        text("20-03-05 12:34:56")
    );
    assert_eq!(value("year(born)"), Value::Int(1815));
    assert_eq!(value("month(seen)"), Value::Int(3));
    assert_eq!(value("day(born)"), Value::Int(10));
    assert_eq!(value("current_year()"), Value::Int(2024));
    assert_eq!(value("to_text(current_date())"), text("2024-06-15"));
    assert_eq!(value("to_text(born + 22)"), text("1816-01-01"));
    assert_eq!(value("to_text(1 + born)"), text("1815-12-11"));
    assert_eq!(value("to_text(born - 10)"), text("1815-11-30"));
    assert_eq!(value("current_date() - born"), Value::Int(19_889 + 56_270));
    assert_eq!(
        column("parse_date(us_date, 'MM/DD/YYYY')"),
        (ColumnType::Date, true)
    );
    assert_eq!(column("born - born"), (ColumnType::Int, true));
}

#[test]
fn current_year_comes_from_the_run_start() {
    let mut ctx = credvault_sdk::testing::context();
    ctx.run_started_at = 0;
    let (_, out) =
        run_transform_with::<Expr>(&ctx, &config(&["y = current_year()"]), vec![], vec![vec![]])
            .unwrap();
    assert_eq!(out, vec![Outcome::Keep(vec![Value::Int(1970)])]);
}

#[test]
fn assignments_replace_or_append_in_order_and_see_earlier_results() {
    let (schema, out) = run(&[
        "name = strip(name)",
        "greeting = concat('Hi ', name)",
        "us_date = parse_date(us_date, 'MM/DD/YYYY')",
        "shout = upper(greeting)",
        "age = to_text(age)",
    ])
    .unwrap();
    let names: Vec<&str> = schema.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "name",
            "age",
            "price",
            "amount",
            "active",
            "born",
            "seen",
            "nothing",
            "no_int",
            "birth_year",
            "us_date",
            "odd name",
            "greeting",
            "shout"
        ]
    );
    assert_eq!(schema[1].type_, ColumnType::Text);
    assert_eq!(schema[10].type_, ColumnType::Date);
    assert_eq!(
        schema[12],
        Column::new("greeting", ColumnType::Text).not_null()
    );
    let Outcome::Keep(values) = &out[0] else {
        panic!("{out:?}")
    };
    assert_eq!(values[0], text("Ada Lovelace"));
    assert_eq!(values[1], text("36"));
    assert_eq!(values[10], Value::Date(18_326));
    assert_eq!(values[12], text("Hi Ada Lovelace"));
    assert_eq!(values[13], text("HI ADA LOVELACE"));
    // A later expression type-checks against the earlier one's new type.
    let err = run(&["age = to_text(age)", "x = age + 1"]).unwrap_err();
    assert!(
        err.starts_with(
            "expression 2 \"x = age + 1\": '+' needs numbers, but age is text (use to_int(age))"
        ),
        "{err}"
    );
}

#[test]
fn no_expressions_pass_rows_through() {
    let (s, out) = run(&[]).unwrap();
    assert_eq!(s, schema());
    assert_eq!(out, vec![Outcome::Keep(row())]);
}

#[test]
fn many_rows_mixed_outcomes() {
    let rows = vec![
        vec![text("1")],
        vec![text("abc")],
        vec![Value::Null],
        vec![text(" 7 ")],
    ];
    let (_, out) = run_transform::<Expr>(
        &config(&["n = to_int(s) * 2"]),
        vec![Column::new("s", ColumnType::Text)],
        rows,
    )
    .unwrap();
    assert_eq!(
        out,
        vec![
            Outcome::Keep(vec![text("1"), Value::Int(2)]),
            Outcome::Error(RowError::new("expected an integer, got \"abc\"").column("n")),
            Outcome::Keep(vec![Value::Null, Value::Null]),
            Outcome::Keep(vec![text(" 7 "), Value::Int(14)]),
        ]
    );
}

#[test]
fn the_type_error_names_the_expression_the_operand_and_the_fix() {
    let err = run(&[
        "email = upper(name)",
        "name = strip(name)",
        "created_at = parse_date(us_date, 'MM/DD/YYYY')",
        "full_age = current_year() - birth_year",
    ])
    .unwrap_err();
    assert_eq!(
        err,
        "expression 4 \"full_age = current_year() - birth_year\": '-' needs numbers, but \
         birth_year is text (give it type = \"int\" in the column mapping, or use \
         to_int(birth_year))\n    full_age = current_year() - birth_year\n    \
         \x20                           ^"
    );
}

#[test]
fn type_errors() {
    let cases = [
        (
            "name + 1",
            "'+' needs numbers, but name is text (give it type = \"int\" in the column mapping, or use to_int(name))",
        ),
        (
            "name + name",
            "'+' needs numbers, but name is text (to join text use concat(name, name))",
        ),
        (
            "-name",
            "unary '-' needs numbers, but name is text (give it type = \"int\" in the column mapping, or use to_int(name))",
        ),
        (
            "active * 2",
            "'*' needs numbers, but active is boolean (use if … then 1 else 0)",
        ),
        (
            "upper(age)",
            "upper needs text, but age is int (use to_text(age))",
        ),
        (
            "length(born)",
            "length needs text, but born is date (use to_text(born))",
        ),
        (
            "substr(name, '1')",
            "substr needs int, but '1' is text (use to_int('1'))",
        ),
        (
            "name == age",
            "'==' cannot compare name (text) with age (int) (give it type = \"int\" in the column mapping, or use to_int(name))",
        ),
        (
            "born < us_date",
            "'<' cannot compare born (date) with us_date (text) (use parse_date(us_date, 'YYYY-MM-DD'))",
        ),
        (
            "active < 1",
            "'<' cannot compare active (boolean) with 1 (int)",
        ),
        ("age and true", "`and` needs boolean, but age is int"),
        ("not name", "not needs boolean, but name is text"),
        (
            "if age then 1 else 2",
            "the condition of `if` needs boolean, but age is int",
        ),
        (
            "if active then 1 else 'x'",
            "the branches of `if` must have one type, but 'x' is text where an earlier one is int (convert it, e.g. with to_text(…))",
        ),
        (
            "coalesce(age, 'x')",
            "the arguments of coalesce must have one type, but 'x' is text where an earlier one is int (convert it, e.g. with to_text(…))",
        ),
        (
            "year(us_date)",
            "year needs a date or timestamp, but us_date is text (use parse_date(us_date, 'YYYY-MM-DD') first)",
        ),
        (
            "parse_date(born, 'YYYY')",
            "parse_date needs text, but born is date; born is already a date: drop the parse_date",
        ),
        (
            "parse_date(us_date, fmt)",
            "the format of parse_date must be a 'quoted' text like 'YYYY-MM-DD' (tokens: YYYY, YY, MM, DD, HH, mm, ss)",
        ),
        (
            "parse_date(us_date, 'MM/DD/YYYQ')",
            "bad date format 'MM/DD/YYYQ': unknown token starting at 'Y' (use YYYY, YY, MM, DD, HH, mm, ss; months are MM, minutes are mm)",
        ),
        (
            "parse_date(us_date, 'MM/YYYY')",
            "the date format 'MM/YYYY' lacks a day (DD)",
        ),
        (
            "to_int(born)",
            "to_int needs a number, text or boolean, but born is date",
        ),
        (
            "round(name)",
            "round needs numbers, but name is text (give it type = \"int\" in the column mapping, or use to_int(name))",
        ),
    ];
    check_config_errors(&cases);
}

#[test]
fn unknown_names_and_arity() {
    let cases = [
        (
            "nme",
            "unknown column \"nme\" (did you mean name? columns: name, age, price, amount, active, born, seen, nothing, no_int, birth_year, us_date, odd name; quote odd names with \"double quotes\", text with 'single quotes')",
        ),
        (
            "uper(name)",
            "unknown function uper (did you mean upper? functions: upper, lower, strip, trim, concat, coalesce, length, substr, replace, round, abs, to_text, to_int, to_float, parse_date, parse_timestamp, format_date, year, month, day, current_year, current_date)",
        ),
        ("upper()", "upper takes 1 argument (upper(text)), got 0"),
        (
            "substr(name)",
            "substr takes 2 or 3 arguments (substr(text, start[, length]), start counts from 1), got 1",
        ),
        (
            "replace(name, 'a')",
            "replace takes 3 arguments (replace(text, from, to)), got 2",
        ),
        (
            "concat()",
            "concat takes at least 1 argument (concat(a, b, …)), got 0",
        ),
        (
            "current_year(1)",
            "current_year takes no arguments (current_year() is the year the run started, in UTC), got 1",
        ),
    ];
    check_config_errors(&cases);
}

#[test]
fn syntax_errors() {
    let cases = [
        ("'abc", "unterminated text: add the closing '"),
        ("\"abc", "unterminated column name: add the closing \""),
        ("(1 + 2", "expected ')' to close the '(', found the end"),
        ("1 + 2)", "unexpected an unmatched ')'"),
        ("1 2", "unexpected 2 (missing an operator or a comma?)"),
        ("1 +", "expected a value, found the end"),
        (
            "age = 1",
            "'=' assigns only at the start; write == to compare",
        ),
        (
            "1 < age < 3",
            "comparisons cannot be chained: write `a < b and b < c`",
        ),
        (
            "if active then 1",
            "expected `else` after `if … then …` (every `if` needs an `else`), found the end",
        ),
        (
            "if active 1 else 2",
            "expected `then` after the condition of `if`, found 1",
        ),
        (
            "upper(name name)",
            "expected ',' or ')' in the arguments of upper, found `name`",
        ),
        ("age # 2", "unexpected character '#'"),
        (
            "99999999999999999999",
            "99999999999999999999 is too large for an int (at most 9223372036854775807)",
        ),
        (
            "then",
            "expected a value, found the keyword `then` (quote a column with this name: \"then\")",
        ),
    ];
    check_config_errors(&cases);
    let err = run(&["just text"]).unwrap_err();
    assert!(err.starts_with("expression 1 \"just text\": expected '=' after the column name, found `text` (write `column = expression`)"), "{err}");
    let err = run(&["= 1"]).unwrap_err();
    assert!(
        err.contains("expected an assignment like `column = expression`"),
        "{err}"
    );
    let err = run(&["x ="]).unwrap_err();
    assert!(err.contains("expected an expression after '='"), "{err}");
}

#[test]
fn the_caret_points_at_the_fault() {
    let err = run(&["x = upper(strip(age))"]).unwrap_err();
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines[1], "    x = upper(strip(age))");
    assert_eq!(lines[2], "                    ^");
    // Positions count characters, not bytes.
    let err = run(&["x = 'é' + age + nme"]).unwrap_err();
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines[2], "        ^");
}

#[test]
fn runtime_errors_name_the_column_and_the_bad_value() {
    let (_, out) = run_transform::<Expr>(
        &config(&["created_at = parse_date(created_at, 'MM/DD/YYYY')"]),
        vec![Column::new("created_at", ColumnType::Text)],
        vec![vec![text("13/45/2020")]],
    )
    .unwrap();
    let Outcome::Error(e) = &out[0] else {
        panic!("{out:?}")
    };
    assert_eq!(
        e.to_string(),
        "created_at: expected a date like MM/DD/YYYY, got \"13/45/2020\""
    );
    let cases = [
        (
            "parse_timestamp(us_date, 'YYYY-MM-DD HH:mm')",
            "expected a timestamp like YYYY-MM-DD HH:mm, got \"03/05/2020\"",
        ),
        ("age / 0", "division by zero (36 / 0)"),
        ("age % 0", "division by zero (36 % 0)"),
        ("price / 0", "division by zero (2.5 / 0)"),
        ("to_int('abc')", "expected an integer, got \"abc\""),
        (
            "to_int(-1e19)",
            "expected a number that fits in an int, got -1e19",
        ),
        ("to_int('1.5')", "expected an integer, got \"1.5\""),
        ("to_float('x1')", "expected a number, got \"x1\""),
        (
            "to_int(1e300)",
            "expected a number that fits in an int, got 1e300",
        ),
        (
            "9223372036854775807 + age",
            "integer overflow in '+' (the result does not fit in an int; use to_float(…))",
        ),
        (
            "abs(-9223372036854775807 - 1)",
            "integer overflow in 'abs' (the result does not fit in an int; use to_float(…))",
        ),
        ("born + 999999999", "the date is out of range"),
    ];
    for (expr, want) in cases {
        let e = row_error(expr);
        assert_eq!(e.column.as_deref(), Some("out"), "{expr}");
        assert_eq!(e.message, want, "{expr}");
    }
}

#[test]
fn config_errors() {
    let err = run_transform::<Expr>(r#"{"expression": []}"#, schema(), vec![]).unwrap_err();
    assert!(
        err.starts_with(
            "invalid config at `expression`: unknown field `expression`, expected `expressions`"
        ),
        "{err}"
    );
    let err = run_transform::<Expr>(r#"{"expressions": [1]}"#, schema(), vec![]).unwrap_err();
    assert!(
        err.starts_with(
            "invalid config at `expressions[0]`: invalid type: integer `1`, expected a string"
        ),
        "{err}"
    );
    let err = run_transform::<Expr>("{}", schema(), vec![]).unwrap_err();
    assert!(err.contains("missing field `expressions`"), "{err}");
}
