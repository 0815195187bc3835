#![allow(clippy::unwrap_used)]

use super::*;
use etch_formats::NoResolver;

fn run(env: &mut Env, text: &str) -> String {
    match eval_text(text, env, &NoResolver) {
        Ok(c) => etch_formats::text::print(&c, &NoResolver).unwrap(),
        Err(e) => format!("!{} {}", e.code, e.message),
    }
}

fn ev(text: &str) -> String {
    run(&mut Env::new(), text)
}

/// Each row: input text, expected printed result or `!CODE message`.
fn check(rows: &[(&str, &str)]) {
    let mut bad = Vec::new();
    for (input, want) in rows {
        let got = ev(input);
        if got != *want {
            bad.push(format!("{input}\n   want {want}\n   got  {got}"));
        }
    }
    assert!(bad.is_empty(), "mismatches:\n{}", bad.join("\n"));
}

#[test]
fn self_evaluating_and_collections() {
    check(&[
        ("", "nil"),
        ("nil", "nil"),
        ("1", "1"),
        ("1.5", "1.5"),
        ("\"hi\"", "\"hi\""),
        (":k", ":k"),
        ("true", "true"),
        ("0x0aff", "0x0aff"),
        ("\\a", "\\a"),
        ("#12", "#12"),
        ("()", "()"),
        ("[1 (+ 1 1) 3]", "[1 2 3]"),
        ("{:a (+ 1 1)}", "{:a 2}"),
        ("#{(+ 1 1)}", "#{2}"),
        ("1 2 3", "3"),
        ("foo", "!UNDECLARED foo"),
        ("(quasiquote x)", "x"),
        ("`[1 ~(+ 1 1) (a ~(inc 2))]", "[1 2 (a 3)]"),
        ("(try 1)", "!UNDECLARED try"),
        ("(loop [] 1)", "1"),
        (
            "[1 2",
            "!SYNTAX Parse error at 1:4: unexpected end of input (unclosed '[' at 1:0)",
        ),
    ]);
}

#[test]
fn special_forms() {
    check(&[
        ("(quote x)", "x"),
        ("(quote (a b))", "(a b)"),
        ("'foo", "foo"),
        ("(quote)", "!ARITY quote requires one argument."),
        ("(quote a b)", "!ARITY quote requires one argument."),
        ("(if true 1 2)", "1"),
        ("(if nil 1 2)", "2"),
        ("(if false 1)", "nil"),
        ("(if 0 1 2)", "1"),
        ("(if [] :t :f)", ":t"),
        ("(cond false 1 nil 2 3)", "3"),
        ("(cond false 1 true 2 3)", "2"),
        ("(cond false 1)", "nil"),
        ("(cond)", "nil"),
        ("(do)", "nil"),
        ("(do 1 2 3)", "3"),
        ("(let [a 1 b (+ a 1)] (+ a b))", "3"),
        ("(let [_ 5] 7)", "7"),
        ("(let [a 1] (let [a 2] a))", "2"),
        ("(let [a 1])", "nil"),
        (
            "(let)",
            "!SYNTAX let requires a binding form vector at minimum",
        ),
        (
            "(let (a 1) a)",
            "!SYNTAX let requires a vector of binding forms but got: (a 1)",
        ),
        (
            "(let [a] a)",
            "!SYNTAX let requires a binding vector with an even number of forms but got: 1",
        ),
        ("(let [[a b] [1 2]] a)", "1"),
        ("(let [[a [b & c]] [1 [2 3 4]]] [a b c])", "[1 2 [3 4]]"),
        (
            "(let [[a b] [1]] a)",
            "!ARITY Expected 2 arguments but got 1 for binding form: [a b]",
        ),
        (
            "(let [[a] 1] a)",
            "!CAST Trying to destructure an argument that is not a sequential collection",
        ),
        ("((fn [[k v]] [v k]) [1 2])", "[2 1]"),
        ("((fn ([x] 1) ([x y] 2) ([x y & z] 3)) 1 2 3 4)", "3"),
        (
            "((fn ([x] 1) ([x y] 2)))",
            "!ARITY No matching function arity found for arity 0",
        ),
        (
            "(fn ([x] 1) [y])",
            "!SYNTAX multi-function requires instances of form: ([args] ...) but got [y]",
        ),
        ("(def x 5)", "5"),
        ("(def x 5) (+ x 1)", "6"),
        (
            "(def 1 2)",
            "!COMPILE def requires a Symbol as first argument but got: Integer",
        ),
        ("(def x 1 2)", "!COMPILE Too many arguments to def"),
        ("(and)", "true"),
        ("(and 1 2)", "2"),
        ("(and 1 nil 2)", "nil"),
        ("(and 1 false undefined-sym)", "false"),
        ("(or)", "nil"),
        ("(or nil 2 undefined-sym)", "2"),
        ("(or nil false)", "false"),
        ("(when true 1 2)", "2"),
        ("(when nil 1 2)", "nil"),
        ("(when false)", "nil"),
    ]);
}

#[test]
fn functions_and_application() {
    check(&[
        ("((fn [x] (* x x)) 7)", "49"),
        ("((fn [] 1))", "1"),
        ("((fn [x & more] more) 1 2 3)", "[2 3]"),
        ("((fn [x & more] x) 1)", "1"),
        ("((fn [_ y] y) 1 2)", "2"),
        ("(fn [x] x)", "(fn [x] x)"),
        ("count", "count"),
        ("(def sq (fn [x] (* x x))) (sq 5)", "25"),
        ("(let [a 10 f (fn [x] (+ x a))] (f 1))", "11"),
        (
            "((fn [x] x))",
            "!ARITY Expected 1 arguments but got 0 for binding form: [x]",
        ),
        (
            "((fn [x y] x) 1 2 3)",
            "!ARITY Expected 2 arguments but got 3 for binding form: [x y]",
        ),
        (
            "(fn)",
            "!ARITY fn requires parameter vector and body in form: (fn)",
        ),
        (
            "(fn x 1)",
            "!SYNTAX fn requires a parameter vector or arity lists but got: x",
        ),
        ("(:a {:a 1})", "1"),
        ("(:b {:a 1} 9)", "9"),
        (
            "(:a)",
            "!ARITY Expected arity 1 or 2 for keyword lookup but got: 0",
        ),
        ("({:a 1} :a)", "1"),
        ("({:a 1} :b 3)", "3"),
        (
            "({:a 1})",
            "!ARITY Expected arity 1 or 2 for map lookup but got: 0",
        ),
        ("(#{1 2} 2)", "true"),
        ("(#{1 2} 3)", "false"),
        (
            "(#{1} 1 2)",
            "!ARITY Expected arity 1 for set lookup but got: 2 in set: #{1}",
        ),
        ("([10 20 30] 1)", "20"),
        ("([10 20 30] 5)", "!BOUNDS Index: 5"),
        ("([10 20 30] 5 :nf)", ":nf"),
        ("('(10 20 30) 0)", "10"),
        ("([1])", "!ARITY Expected arity 1 or 2 for sequence lookup"),
        (
            "(1 2 3)",
            "!CAST Can't convert value of type Integer to type Function",
        ),
        (
            "(\"s\" 1)",
            "!CAST Can't convert value of type String to type Function",
        ),
        (
            "(nil)",
            "!CAST Can't convert value of type Nil to type Function",
        ),
    ]);
}

#[test]
fn access() {
    check(&[
        ("(count [1 2 3])", "3"),
        ("(count nil)", "0"),
        ("(count \"abc\")", "3"),
        ("(count 0x0102)", "2"),
        ("(count {:a 1 :b 2})", "2"),
        ("(count #{1})", "1"),
        ("(count '(1 2))", "2"),
        (
            "(count 1 2)",
            "!ARITY count requires arity 1 but called with: 2",
        ),
        (
            "(count)",
            "!ARITY count requires arity 1 but called with: 0",
        ),
        (
            "(count 1)",
            "!CAST Can't convert argument at position 1 (with type Integer) to type DataStructure",
        ),
        (
            "(count count)",
            "!CAST Can't convert argument at position 1 (with type Function) to type DataStructure",
        ),
        ("(get {:a 1} :a)", "1"),
        ("(get {:a 1} :b)", "nil"),
        ("(get {:a 1} :b 7)", "7"),
        ("(get [5 6] 1)", "6"),
        ("(get [5 6] 2)", "nil"),
        ("(get [5 6] :x 0)", "0"),
        ("(get #{5} 5)", "true"),
        ("(get #{5} 6)", "false"),
        ("(get nil :a)", "nil"),
        ("(get nil :a 3)", "3"),
        (
            "(get {:a 1})",
            "!ARITY get requires exactly 2 or 3 arguments",
        ),
        (
            "(get 1 2)",
            "!CAST Can't convert value of type Integer to type DataStructure",
        ),
        ("(get-in {:a {:b 2}} [:a :b])", "2"),
        ("(get-in {:a {:b 2}} [:a :c])", "nil"),
        ("(get-in {:a {:b 2}} [:a :c] :nf)", ":nf"),
        ("(get-in {:a nil} [:a :b] :nf)", ":nf"),
        ("(get-in {:a 1} [])", "{:a 1}"),
        ("(get-in [[1 2] [3 4]] [1 0])", "3"),
        (
            "(get-in {:a 1} [:a :b])",
            "!CAST Can't convert value of type Integer to type DataStructure",
        ),
        (
            "(get-in {:a 1} :a)",
            "!CAST Can't convert value of type Keyword to type Sequence",
        ),
        (
            "(get-in {:a 1})",
            "!ARITY get-in requires minimum arity 2 but called with: 1",
        ),
        ("(contains-key? {:a 1} :a)", "true"),
        ("(contains-key? {:a 1} :b)", "false"),
        ("(contains-key? [1 2] 1)", "true"),
        ("(contains-key? [1 2] 2)", "false"),
        ("(contains-key? nil 1)", "false"),
        ("(empty? nil)", "true"),
        ("(empty? [])", "true"),
        ("(empty? [1])", "false"),
        ("(empty? \"\")", "true"),
        (
            "(empty? 1 2)",
            "!ARITY empty? requires exactly one argument",
        ),
        ("(keys {:a 1})", "[:a]"),
        ("(values {:a 1})", "[1]"),
        ("(vals {:a 1})", "[1]"),
        ("(keys {})", "[]"),
        (
            "(keys [1])",
            "!CAST Can't convert argument at position 1 (with type Vector) to type Map",
        ),
        ("(first [1 2 3])", "1"),
        ("(second [1 2 3])", "2"),
        ("(last [1 2 3])", "3"),
        ("(first '(7 8))", "7"),
        ("(last '(7 8))", "8"),
        ("(first {:a 1})", "[:a 1]"),
        ("(first [])", "!BOUNDS Index: 0"),
        ("(second [1])", "!BOUNDS Index: 1"),
        ("(last [])", "!BOUNDS Index: -1"),
        ("(first nil)", "!BOUNDS Index: 0"),
        (
            "(first 1)",
            "!CAST Can't convert argument at position 1 (with type Integer) to type Sequence",
        ),
        ("(nth [1 2 3] 2)", "3"),
        ("(nth '(1 2 3) 0)", "1"),
        ("(nth [1 2 3] 3)", "!BOUNDS Index: 3"),
        ("(nth [1 2 3] -1)", "!BOUNDS Index: -1"),
        (
            "(nth [1 2 3] :a)",
            "!CAST Can't convert argument at position 2 (with type Keyword) to type Integer",
        ),
        (
            "(nth [1 2 3])",
            "!ARITY nth requires arity 2 but called with: 1",
        ),
        ("(next [1 2 3])", "[2 3]"),
        ("(next '(1 2 3))", "(2 3)"),
        ("(next [1])", "nil"),
        ("(next [])", "nil"),
        ("(next nil)", "nil"),
        (
            "(next 5)",
            "!CAST Can't convert argument at position 1 (with type Integer) to type Sequence",
        ),
        ("(rest [1])", "[]"),
        ("(rest nil)", "[]"),
        ("(rest [1 2])", "[2]"),
        ("(empty [1 2])", "[]"),
        ("(empty {:a 1})", "{}"),
        ("(empty nil)", "nil"),
    ]);
}

#[test]
fn construction() {
    check(&[
        ("(vector 1 2)", "[1 2]"),
        ("(vector)", "[]"),
        ("(list 1 2)", "(1 2)"),
        ("(hash-set 1 1)", "#{1}"),
        ("(hash-map :a 1)", "{:a 1}"),
        ("(hash-map)", "{}"),
        ("(hash-map :a)", "!ARITY hash-map requires an even number of arguments"),
        ("(vec '(1 2))", "[1 2]"),
        ("(vec nil)", "[]"),
        ("(vec {:a 1})", "[[:a 1]]"),
        ("(vec 1)", "!CAST Can't convert argument at position 1 (with type Integer) to type Sequence"),
        ("(= (set [1 1 2]) #{1 2})", "true"),
        ("(count (set [1 1 2]))", "2"),
        ("(assoc {:a 1} :a 2)", "{:a 2}"),
        ("(assoc nil :a 1)", "{:a 1}"),
        ("(assoc [1 2] 0 9)", "[9 2]"),
        ("(assoc [1 2] 2 3)", "[1 2 3]"),
        ("(assoc [1 2] 3 3)", "!ARGUMENT Cannot assoc value - invalid (key type Integer is invalid or out of bounds)"),
        ("(assoc [1 2] :a 3)", "!ARGUMENT Cannot assoc value - invalid (key type Keyword is invalid or out of bounds)"),
        ("(assoc {} :a)", "!ARITY assoc requires key/value pairs as successive args"),
        ("(assoc {:a 1})", "{:a 1}"),
        ("(dissoc {:a 1} :a)", "{}"),
        ("(dissoc nil :a)", "{}"),
        ("(conj [1] 2 3)", "[1 2 3]"),
        ("(conj '(1) 2)", "(2 1)"),
        ("(conj #{} 1)", "#{1}"),
        ("(conj {} [:a 1])", "{:a 1}"),
        ("(conj nil 1)", "[1]"),
        ("(conj {} 1)", "!ARGUMENT Failure to 'conj' argument at position 2 (with Type Integer). Probably not a legal value for this data structure?"),
        ("(conj)", "!ARITY conj requires minimum arity 1 but called with: 0"),
        ("(cons 1 [2 3])", "(1 2 3)"),
        ("(cons 1 2 '(3))", "(1 2 3)"),
        ("(cons 1 nil)", "(1)"),
        ("(cons 1)", "!ARITY cons requires minimum arity 2 but called with: 1"),
        ("(concat [1] [2] nil [3])", "[1 2 3]"),
        ("(concat '(1) [2])", "(1 2)"),
        ("(concat nil [1])", "[1]"),
        ("(concat)", "nil"),
        ("(into [1] [2 3])", "[1 2 3]"),
        ("(into {} [[:a 1]])", "{:a 1}"),
        ("(merge {:a 1} {:a 2})", "{:a 2}"),
        ("(merge)", "{}"),
        ("(reverse [1 2 3])", "(3 2 1)"),
        ("(reverse (list 1 2 3))", "[3 2 1]"),
    ]);
}

#[test]
fn text() {
    check(&[
        ("(str)", "\"\""),
        ("(str \"a\" \"b\")", "\"ab\""),
        ("(str :a 1)", "\":a1\""),
        ("(str nil)", "\"nil\""),
        ("(str 0x0aff)", "\"0aff\""),
        ("(str [1 \"x\"])", "\"[1 \\\"x\\\"]\""),
        ("(print \"a\")", "\"\\\"a\\\"\""),
        ("(print [1 2])", "\"[1 2]\""),
        ("(name :foo)", "\"foo\""),
        ("(name 'bar)", "\"bar\""),
    ]);
}

#[test]
fn numbers() {
    check(&[
        ("(+)", "0"),
        ("(*)", "1"),
        ("(+ 1 2 3)", "6"),
        ("(+ 1 2.5)", "3.5"),
        ("(* 2 3)", "6"),
        ("(- 5)", "-5"),
        ("(- 10 1 2)", "7"),
        (
            "(-)",
            "!ARITY - requires minimum arity 1 but called with: 0",
        ),
        ("(/ 4 2)", "2.0"),
        ("(/ 1 0)", "##Inf"),
        ("(/ 2)", "0.5"),
        ("(+ 9223372036854775807 1)", "9223372036854775808"),
        (
            "(* 9223372036854775807 9223372036854775807 -1)",
            "-85070591730234615847396907784232501249",
        ),
        (
            "(+ 1 :x)",
            "!CAST Can't convert argument at position 2 (with type Keyword) to type Number",
        ),
        ("(inc 1)", "2"),
        ("(dec 0)", "-1"),
        ("(inc 9223372036854775807)", "9223372036854775808"),
        (
            "(inc 1.5)",
            "!CAST Can't convert argument at position 1 (with type Double) to type Long",
        ),
        ("(inc)", "!ARITY inc requires arity 1 but called with: 0"),
        ("(min 3 1 2)", "1"),
        ("(max 3 1 2)", "3"),
        ("(max 1 2.5)", "2.5"),
        (
            "(min)",
            "!ARITY min requires minimum arity 1 but called with: 0",
        ),
        ("(= 1 1)", "true"),
        ("(= 1 1.0)", "false"),
        ("(=)", "true"),
        ("(= [1 2] [1 2] [1 2])", "true"),
        ("(= {:a 1} {:a 2})", "false"),
        ("(== 1 1.0)", "true"),
        ("(< 1 2 3)", "true"),
        ("(< 1 3 2)", "false"),
        ("(<)", "true"),
        ("(< 1)", "true"),
        ("(> 3 2 1)", "true"),
        ("(<= 1 1 2)", "true"),
        ("(>= 2 2 3)", "false"),
        ("(!= 1 2)", "true"),
        ("(!= 1)", "false"),
        (
            "(< 1 :a)",
            "!CAST Can't convert argument at position 2 (with type Keyword) to type Number",
        ),
        ("(not nil)", "true"),
        ("(not 0)", "false"),
        ("(not)", "!ARITY not requires arity 1 but called with: 0"),
        ("(boolean 1)", "true"),
        ("(boolean false)", "false"),
    ]);
}

#[test]
fn predicates() {
    check(&[
        ("(nil? nil)", "true"),
        ("(nil? false)", "false"),
        ("(nil?)", "!ARITY nil? requires exactly one argument"),
        ("(nil? 1 2)", "!ARITY nil? requires exactly one argument"),
        ("(boolean? false)", "true"),
        ("(boolean? nil)", "false"),
        ("(number? 1.5)", "true"),
        ("(number? :a)", "false"),
        ("(long? 1)", "true"),
        ("(long? 1.0)", "false"),
        ("(int? 99999999999999999999)", "true"),
        ("(double? 1.0)", "true"),
        ("(str? \"\")", "true"),
        ("(blob? 0x00)", "true"),
        ("(keyword? :a)", "true"),
        ("(symbol? 'a)", "true"),
        ("(address? #1)", "true"),
        ("(vector? [])", "true"),
        ("(list? '())", "true"),
        ("(map? {})", "true"),
        ("(set? #{})", "true"),
        ("(coll? [])", "true"),
        ("(coll? \"a\")", "false"),
        ("(countable? \"a\")", "true"),
        ("(fn? count)", "true"),
        ("(fn? (fn [] 1))", "true"),
        ("(fn? :a)", "false"),
        ("(zero? 0)", "true"),
        ("(zero? 1)", "false"),
    ]);
}

#[test]
fn session_env_persists() {
    let mut env = Env::new();
    assert_eq!(run(&mut env, "(def a 41)"), "41");
    assert_eq!(run(&mut env, "(inc a)"), "42");
    assert_eq!(
        run(&mut env, "(def f (fn [x] (+ x a)))"),
        "(fn [x] (+ x a))"
    );
    assert_eq!(run(&mut env, "(f 1)"), "42");
    assert_eq!(
        env.get("a")
            .map(|c| etch_formats::text::print(&c, &NoResolver).unwrap())
            .as_deref(),
        Some("41")
    );
    // A failed evaluation keeps earlier definitions.
    assert_eq!(run(&mut env, "(def b 1) (nope)"), "!UNDECLARED nope");
    assert_eq!(run(&mut env, "b"), "1");
}

#[test]
fn limits() {
    // Unbounded recursion hits the depth limit, never the Rust stack.
    assert_eq!(
        ev("(def f (fn [x] (f x))) (f 1)"),
        "!DEPTH Depth limit exceeded"
    );
    // Forms nested as deep as the reader allows evaluate within the depth limit.
    let ok = format!("{}1{}", "(do ".repeat(200), ")".repeat(200));
    assert_eq!(ev(&ok), "1");
    // Exponential work hits the step limit.
    assert_eq!(
        ev("(def f (fn [n] (if (= n 0) 0 (+ (f (dec n)) (f (dec n)))))) (f 40)"),
        "!JUICE Query step limit exceeded"
    );
    // Results grow past the size limit.
    assert_eq!(
        ev("(def d (fn [s n] (if (= n 0) s (d (str s s) (dec n))))) (count (d \"0123456789abcdef\" 30))"),
        "!LIMIT Resource limit exceeded"
    );
    // print stops at its text limit.
    assert_eq!(
        ev("(def d (fn [s n] (if (= n 0) s (d (str s s) (dec n))))) (count (print (d \"0123456789abcdef\" 14)))"),
        "!LIMIT Print limit exceeded"
    );
    assert_eq!(
        ev("(def d (fn [s n] (if (= n 0) s (d (str s s) (dec n))))) (count (d \"0123456789abcdef\" 10))"),
        "16384"
    );
}

#[test]
fn more_construction_and_bytes() {
    check(&[
        ("(disj #{1 2} 1)", "#{2}"),
        ("(disj #{1} 1 2)", "#{}"),
        ("(disj nil 1)", "#{}"),
        (
            "(disj [1] 1)",
            "!CAST Can't convert argument at position 1 (with type Vector) to type Set",
        ),
        ("(assoc-in {:a {:b 1}} [:a :b] 2)", "{:a {:b 2}}"),
        ("(assoc-in nil [:a :b] 1)", "{:a {:b 1}}"),
        ("(assoc-in {:a 1} [] 5)", "5"),
        ("(assoc-in [[1 2]] [0 1] 9)", "[[1 9]]"),
        (
            "(assoc-in {:a 1} [:a :b] 2)",
            "!CAST Can't convert value of type Integer to type DataStructure",
        ),
        (
            "(assoc-in {} :a 1)",
            "!CAST Can't convert argument at position 2 (with type Keyword) to type Sequence",
        ),
        ("(keyword \"abc\")", ":abc"),
        ("(keyword 'abc)", ":abc"),
        ("(symbol :abc)", "abc"),
        (
            "(keyword \"\")",
            "!ARGUMENT A Keyword needs a name of 1 to 128 bytes, not an empty one",
        ),
        (
            "(symbol 1)",
            "!CAST Can't convert argument at position 1 (with type Integer) to type Symbol",
        ),
        ("(encoding 1)", "0x1101"),
        ("(encoding nil)", "0x00"),
        ("(encoding \"a\")", "0x300161"),
        (
            "(hash 0x)",
            "0xa7ffc6f8bf1ed76651c14756a061d662f580ff4de43b49fa82d80a4b80f8434a",
        ),
        (
            "(= (hash (encoding [1 2])) (hash (encoding [1 2])))",
            "true",
        ),
        (
            "(hash \"a\")",
            "!CAST Can't convert argument at position 1 (with type String) to type Blob",
        ),
        ("(index 0x01 1)", "#Index {0x01 1}"),
        (
            "(index 0x01)",
            "!ARITY index requires an even number of arguments",
        ),
        (
            "(index 1 2)",
            "!ARGUMENT Cannot have a key of Type Integer in Index",
        ),
        ("(slice [1 2 3 4] 1 3)", "[2 3]"),
        ("(slice [1 2 3 4] 2)", "[3 4]"),
        ("(slice '(1 2 3) 0 1)", "(1)"),
        ("(slice \"hello\" 1 3)", "\"el\""),
        ("(slice 0x010203 1)", "0x0203"),
        ("(slice [1 2] 3)", "!BOUNDS Index: 3"),
        ("(slice [1 2] 0 3)", "!BOUNDS Index: 3"),
        ("(slice [1 2] 2 1)", "!BOUNDS End before start"),
        ("(cat 0x01 0x0203)", "0x010203"),
        ("(cat nil \"ab\" 0x63 \\d)", "\"abcd\""),
        ("(cat)", "0x"),
        ("(cat 0x01 \"a\")", "0x0161"),
        (
            "(cat 0x01 1)",
            "!CAST Can't convert argument at position 2 (with type Integer) to type Blob",
        ),
        (
            "(slice [1 2] :a)",
            "!CAST Can't convert argument at position 2 (with type Keyword) to type Integer",
        ),
    ]);
}

#[test]
fn odd_inputs_give_values_or_errors_never_panics() {
    check(&[
        (
            "(nth [1] 9223372036854775807)",
            "!BOUNDS Index: 9223372036854775807",
        ),
        (
            "(nth [1] 99999999999999999999)",
            "!BOUNDS Index: 99999999999999999999",
        ),
        ("(slice [1] -1)", "!BOUNDS Index: -1"),
        ("(get-in nil nil)", "nil"),
        (
            "(#{})",
            "!ARITY Expected arity 1 for set lookup but got: 0 in set: #{}",
        ),
        ("((fn [& r] r))", "[]"),
        (
            "(fn [& a b] 1)",
            "!SYNTAX Unsupported binding form: [& a b]",
        ),
        ("(fn [1] 1)", "!COMPILE Bad binding form"),
        ("(inc -9223372036854775808)", "-9223372036854775807"),
        ("(dec -9223372036854775808)", "-9223372036854775809"),
        ("(- -9223372036854775808)", "9223372036854775808"),
        ("(/ 0 0)", "##NaN"),
        ("(< 1 ##NaN)", "false"),
        ("(first (quote ()))", "!BOUNDS Index: 0"),
        ("(count (quote (1 2 3)))", "3"),
        ("(def if 1)", "1"),
        ("(let [if 2] (if true 3 4))", "3"),
        ("(get {nil 1} nil)", "1"),
        ("(get {[1 2] :v} [1 2])", ":v"),
        ("((fn [f] (f 2)) inc)", "3"),
        ("([inc] 0)", "inc"),
        ("(= inc inc)", "true"),
        ("(str inc)", "\"inc\""),
        ("(count (str (fn [x] x)))", "10"),
        ("(let [x 1] (def y x)) y", "1"),
    ]);
}

#[test]
fn wide_recursion_runs_out_of_steps_not_stack() {
    // Self-recursion: each level nests a few evaluations, within the depth budget at 50 levels
    // and past it at 1000.
    assert_eq!(
        ev("(def f (fn [n] (cond (= n 0) :done (f (dec n))))) (f 50)"),
        ":done"
    );
    assert_eq!(
        ev("(def f (fn [n] (cond (= n 0) :done (f (dec n))))) (f 1000)"),
        "!DEPTH Depth limit exceeded"
    );
    // Building a long vector element by element stays within steps.
    assert_eq!(
        ev("(def g (fn [v n] (if (= n 0) (count v) (g (conj v n) (dec n))))) (g [] 50)"),
        "50"
    );
}

#[test]
fn every_name_is_documented_and_every_doc_names_something() {
    for s in super::SPECIAL_FORMS {
        assert!(super::doc(s).is_some(), "{s} has no doc");
    }
    // The hand-written docs are the special forms'; functions document themselves in the table.
    for d in super::DOCS {
        assert!(
            super::SPECIAL_FORMS.contains(&d.name),
            "{} is documented but not a special form",
            d.name
        );
        assert_eq!(d.group, super::Group::SpecialForm, "{}", d.name);
    }
    let all = super::all_docs();
    let mut names: Vec<_> = all.iter().map(|d| d.name).collect();
    names.sort();
    names.dedup();
    assert_eq!(names.len(), all.len(), "a name is documented twice");
}

/// Runs `examples` in order in one session, as the shell would, on a fresh store with a node
/// (key seed 7, clock fixed at 1000 ms) so that storage and DLFS examples run too: each printed
/// result, or `!CODE message`.
fn run_examples(examples: &[(&str, &str)]) -> Vec<String> {
    use crate::node::LocalNode;
    use crate::store::{CellStore, EtchStore};
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn CellStore> = Arc::new(EtchStore::create(dir.path().join("s.etch")).unwrap());
    let key = ed25519_dalek::SigningKey::from_bytes(&[7; 32]);
    let node = LocalNode::open(store.clone(), Some(key))
        .unwrap()
        .with_clock(|| 1000);
    let mut env = Env::new();
    examples
        .iter()
        .map(|(input, _)| {
            let mut ctx = EvalContext::new(store.as_ref());
            ctx.node = Some(&node);
            match eval_text_in(input, &mut env, &ctx) {
                Ok(c) => etch_formats::text::print(&c, store.as_ref()).unwrap(),
                Err(e) => format!("!{} {}", e.code, e.message),
            }
        })
        .collect()
}

/// Every example of the built-in table gives exactly its printed result (or error code), and
/// every entry has examples, an error among them where the function can fail on its input.
#[test]
fn every_table_example_holds() {
    let mut bad = Vec::new();
    for b in super::builtins::all() {
        assert!(!b.examples.is_empty(), "{} has no example", b.doc.name);
        for ((input, want), got) in b.examples.iter().zip(run_examples(b.examples)) {
            let ok = match want.strip_prefix('!') {
                Some(code) => got.starts_with(&format!("!{code} ")),
                None => got == *want,
            };
            if !ok {
                bad.push(format!("{input}\n   want {want}\n   got  {got}"));
            }
        }
    }
    assert!(bad.is_empty(), "mismatches:\n{}", bad.join("\n"));
}

/// `get` and `contains-key?` on an Index follow one path by the key's identity (its first 32
/// bytes), and the key found must be the key asked for: a longer key with the same first 32
/// bytes is another key.
#[test]
fn index_lookups_by_identity_then_equality() {
    check(&[
        ("(get (index 0x0000000000000000000000000000000000000000000000000000000000000000aa 1) 0x0000000000000000000000000000000000000000000000000000000000000000aa)", "1"),
        ("(get (index 0x0000000000000000000000000000000000000000000000000000000000000000aa 1) 0x0000000000000000000000000000000000000000000000000000000000000000bb)", "nil"),
        ("(get (index 0x0000000000000000000000000000000000000000000000000000000000000000aa 1) 0x0000000000000000000000000000000000000000000000000000000000000000bb :nf)", ":nf"),
        ("(contains-key? (index 0x0000000000000000000000000000000000000000000000000000000000000000aa 1) 0x0000000000000000000000000000000000000000000000000000000000000000aa)", "true"),
        ("(contains-key? (index 0x0000000000000000000000000000000000000000000000000000000000000000aa 1) 0x0000000000000000000000000000000000000000000000000000000000000000bb)", "false"),
        ("(get (index :a 1 :b 2) :b)", "2"),
        ("(get (index :a 1) 1)", "nil"),
        ("(contains-key? (index) :a)", "false"),
    ]);
    // One path: a lookup in an Index of 50,000 entries takes a handful of steps, not 50,000.
    let mut ctx = EvalContext::new(&NoResolver);
    ctx.steps_max = 200;
    let mut env = Env::new();
    let big = Cell::index(
        (0..50_000)
            .map(|i| (Cell::blob(&(i as u64).to_be_bytes()), Cell::long(i)))
            .collect(),
    )
    .unwrap();
    env.define("big", big);
    let got = eval_text_in("(get big 0x0000000000009c3f)", &mut env, &ctx).unwrap();
    assert_eq!(got, Cell::long(39_999));
}

#[test]
fn control_forms() {
    check(&[
        ("(loop [] 1 2 :foo)", ":foo"),
        ("(loop [a :foo] :bar a)", ":foo"),
        (
            "(loop)",
            "!SYNTAX loop requires a binding form vector at minimum",
        ),
        (
            "(loop [a])",
            "!SYNTAX loop requires a binding vector with an even number of forms but got: 1",
        ),
        ("(loop [i 0] (if (< i 10000) (recur (inc i)) i))", "10000"),
        (
            "(loop [i 0] (recur (inc i)))",
            "!JUICE Query step limit exceeded",
        ),
        (
            "(recur 1)",
            "!EXCEPTION recur used outside of a loop or function",
        ),
        (
            "(reduced 1)",
            "!EXCEPTION reduced used outside of a reduce operation",
        ),
        (
            "(do (defn f [x] (reduced x)) (reduce (fn [a x] (f x)) nil [1 2]))",
            "1",
        ),
        ("(do (def n 0) (dotimes [i 4] (def n (+ n i))) n)", "6"),
        ("(dotimes [i 3])", "nil"),
        (
            "(dotimes [1 10])",
            "!CAST `dotimes` requires a symbol for loop binding",
        ),
        ("(if-let [a 1] a)", "1"),
        ("(if-let [a []] 3 4)", "3"),
        ("(if-let [a nil] 3 4)", "4"),
        ("(if-let [a false] 1)", "nil"),
        (
            "(if-let [a true])",
            "!ARITY No matching function arity found for arity 1",
        ),
        (
            "(if-let [foo] 1)",
            "!ARITY Insufficient arguments (1) for binding form: [sym exp]",
        ),
        ("(when-let [a 1] 2 a)", "1"),
        ("(when-let [a false] 1)", "nil"),
        ("(when-not false 1 2)", "2"),
        ("(when-not 1 2)", "nil"),
        ("(do (defn sq [x] (* x x)) (sq 7))", "49"),
        (
            "(defn f)",
            "!ARITY `defn` requires at least one function definition",
        ),
        (
            "(defn f \"doc\" [x] x)",
            "!SYNTAX multi-function requires instances of form: ([args] ...) but got \"doc\"",
        ),
        ("(assert (= 1 1) true)", "nil"),
        ("(assert true (= 1 2))", "!ASSERT Assert failed: (= 1 2)"),
    ]);
    // defn lasts for the session, as def does.
    let mut env = Env::new();
    run(&mut env, "(defn twice [x] (* 2 x))");
    assert_eq!(run(&mut env, "(twice 21)"), "42");
}

#[test]
fn blob_conversions() {
    check(&[
        ("(blob \"cafe\")", "0xcafe"),
        ("(blob \"CAFE\")", "0xcafe"),
        ("(blob \"\")", "0x"),
        ("(blob 0x0102)", "0x0102"),
        ("(blob 255)", "0x00ff"),
        ("(blob -1)", "0xff"),
        ("(blob \\a)", "0x61"),
        ("(blob true)", "0x01"),
        ("(blob false)", "0x00"),
        ("(blob :ab)", "0x6162"),
        ("(blob #12)", "0x000000000000000c"),
        (
            "(blob \"xyz\")",
            "!CAST Can't convert argument at position 1 (with type String) to type Blob",
        ),
        (
            "(blob [1])",
            "!CAST Can't convert argument at position 1 (with type Vector) to type Blob",
        ),
        ("(blob)", "!ARITY blob requires arity 1 but called with: 0"),
        ("(print-full [1 2])", "[1 2]"),
    ]);
}

#[test]
fn storage_functions_need_a_store() {
    check(&[
        ("(root)", "!STATE root needs a store (no store is open)"),
        ("(store 1)", "!STATE store needs a store (no store is open)"),
        ("(store nil)", "!ARGUMENT Cannot store nil"),
        (
            "(set-root! 1)",
            "!STATE set-root! needs a store (no store is open)",
        ),
        (
            "(merge! [:data] 1)",
            "!STATE merge! needs a store (no store is open)",
        ),
    ]);
}

#[test]
fn rights_of_network_queries() {
    let run_as = |rights: Rights, text: &str| {
        let mut ctx = EvalContext::new(&NoResolver);
        ctx.rights = rights;
        match eval_text_in(text, &mut Env::new(), &ctx) {
            Ok(c) => etch_formats::text::print(&c, &NoResolver).unwrap(),
            Err(e) => format!("!{} {}", e.code, e.message),
        }
    };
    let client = Rights::Client {
        may_write_data: true,
    };
    let read_only = Rights::Client {
        may_write_data: false,
    };
    let trust = "!TRUST Operation requires admin rights";
    assert_eq!(run_as(client, "(set-root! 1)"), trust);
    assert_eq!(run_as(read_only, "(store 1)"), trust);
    assert_eq!(run_as(read_only, "(merge! [:data] 1)"), trust);
    // Allowed, then stopped only by the missing store.
    assert_eq!(
        run_as(client, "(store 1)"),
        "!STATE store needs a store (no store is open)"
    );
    assert_eq!(run_as(read_only, "(count [1 2])"), "2");
}

#[test]
fn cancellation_and_deadline_stop_an_evaluation() {
    // A query of many steps: 2000 closure calls.
    let mut text = String::from("(do ");
    for _ in 0..2000 {
        text.push_str("(inc 1) ");
    }
    text.push(')');
    let flag = AtomicBool::new(true);
    let mut ctx = EvalContext::new(&NoResolver);
    ctx.cancel = Some(&flag);
    let e = eval_text_in(&text, &mut Env::new(), &ctx).unwrap_err();
    assert_eq!(
        (e.code, e.message.as_str()),
        ("CANCELLED", "Query cancelled")
    );
    // Short queries finish before the first check.
    assert_eq!(
        eval_text_in("(inc 1)", &mut Env::new(), &ctx).unwrap(),
        Cell::long(2)
    );

    let mut ctx = EvalContext::new(&NoResolver);
    ctx.deadline = Some(Instant::now());
    let e = eval_text_in(&text, &mut Env::new(), &ctx).unwrap_err();
    assert_eq!(
        (e.code, e.message.as_str()),
        ("JUICE", "Query time limit exceeded")
    );
    // Without either, it completes.
    assert_eq!(
        eval_text(&text, &mut Env::new(), &NoResolver).unwrap(),
        Cell::long(2)
    );
}

#[test]
fn keys_and_values_of_an_index() {
    check(&[
        ("(keys (index :b 2 :a 1))", "[:a :b]"),
        ("(values (index :b 2 :a 1))", "[1 2]"),
        ("(keys (index))", "[]"),
    ]);
}
