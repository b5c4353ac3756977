"""Generate the demo dataset (apps/datasets/demo/demo.jsonl): short programming Q&A and D&D-style scenes.

Written for this project. Run `python apps/datasets/demo/generate.py` to regenerate; the output is
deterministic and committed alongside.
"""
from __future__ import annotations

import json
import random
from pathlib import Path

OUT = Path(__file__).with_name("demo.jsonl")
SYSTEM_CODE = "You are a concise programming assistant. Answer with a short explanation and a code example."
SYSTEM_DM = "You are the Dungeon Master of a fantasy tabletop game. Describe scenes vividly and keep the game moving."

# (language, operation) -> code. Every snippet is correct for its language.
SNIPPETS = {
    "Python": {
        "reverse a list": ("items[::-1]", "Slicing with a step of -1 returns a reversed copy; `items.reverse()` reverses in place."),
        "sort a list of numbers": ("sorted(numbers)", "`sorted()` returns a new list; `numbers.sort()` sorts in place."),
        "get the length of a list": ("len(items)", "`len()` works on every built-in sequence and collection."),
        "add an element to the end of a list": ("items.append(42)", "`append` adds one element; use `extend` to add several."),
        "keep only the even numbers of a list": ("[n for n in numbers if n % 2 == 0]", "A list comprehension with a condition filters elements."),
        "double every number in a list": ("[n * 2 for n in numbers]", "A list comprehension applies an expression to each element."),
        "join a list of strings with commas": ("\", \".join(words)", "`str.join` is called on the separator and takes any iterable of strings."),
        "read a file line by line": ("with open(\"notes.txt\") as fh:\n    for line in fh:\n        print(line.rstrip())", "Iterating over the file object streams it, so large files use little memory."),
        "check if a key is in a dictionary": ("if \"name\" in user:\n    print(user[\"name\"])", "The `in` operator checks the keys of a dict in constant time."),
        "convert a string to an integer": ("int(\"42\")", "`int()` raises ValueError when the string is not a number, so wrap it in try/except for user input."),
        "remove duplicates from a list while keeping order": ("list(dict.fromkeys(items))", "Dict keys keep insertion order, so this drops later duplicates only."),
        "make a string uppercase": ("name.upper()", "Strings are immutable: `upper()` returns a new string."),
    },
    "JavaScript": {
        "reverse a list": ("[...items].reverse()", "`reverse()` mutates the array, so copy it first with the spread operator."),
        "sort a list of numbers": ("numbers.sort((a, b) => a - b)", "Without a compare function `sort` compares strings, so 10 would come before 9."),
        "get the length of a list": ("items.length", "`length` is a property, not a method."),
        "add an element to the end of a list": ("items.push(42)", "`push` adds to the end and returns the new length."),
        "keep only the even numbers of a list": ("numbers.filter(n => n % 2 === 0)", "`filter` returns a new array with the elements that pass the test."),
        "double every number in a list": ("numbers.map(n => n * 2)", "`map` returns a new array of the same length."),
        "join a list of strings with commas": ("words.join(\", \")", "`join` converts each element to a string and puts the separator between them."),
        "check if a key is in a dictionary": ("if (\"name\" in user) {\n  console.log(user.name);\n}", "For plain objects `in` also sees inherited keys; `Object.hasOwn(user, \"name\")` does not."),
        "convert a string to an integer": ("Number.parseInt(\"42\", 10)", "Always pass the radix; `Number(\"42\")` is stricter and rejects trailing text."),
        "remove duplicates from a list while keeping order": ("[...new Set(items)]", "A Set keeps the first occurrence of each value in insertion order."),
        "make a string uppercase": ("name.toUpperCase()", "It returns a new string; strings in JavaScript are immutable."),
    },
    "Go": {
        "get the length of a list": ("len(items)", "`len` works on slices, arrays, maps, strings and channels."),
        "add an element to the end of a list": ("items = append(items, 42)", "`append` may allocate a new backing array, so always assign the result."),
        "sort a list of numbers": ("sort.Ints(numbers)", "`sort.Ints` sorts in place; in Go 1.21+ `slices.Sort(numbers)` does the same for any ordered type."),
        "check if a key is in a dictionary": ("if v, ok := user[\"name\"]; ok {\n    fmt.Println(v)\n}", "The two-value form of a map lookup reports whether the key was present."),
        "convert a string to an integer": ("n, err := strconv.Atoi(\"42\")\nif err != nil {\n    return err\n}", "`strconv.Atoi` returns an error instead of panicking on bad input."),
        "join a list of strings with commas": ("strings.Join(words, \", \")", "`strings.Join` takes a slice of strings and a separator."),
        "make a string uppercase": ("strings.ToUpper(name)", "It handles Unicode letters, not only ASCII."),
    },
    "Rust": {
        "reverse a list": ("items.reverse();", "`reverse` works in place on a mutable Vec or slice."),
        "sort a list of numbers": ("numbers.sort();", "`sort` is stable; `sort_unstable` is faster when order of equal items does not matter."),
        "get the length of a list": ("items.len()", "`len()` returns a usize."),
        "add an element to the end of a list": ("items.push(42);", "The Vec must be declared with `let mut`."),
        "keep only the even numbers of a list": ("numbers.retain(|n| n % 2 == 0);", "`retain` filters in place; use `iter().filter()` for a new collection."),
        "double every number in a list": ("let doubled: Vec<i32> = numbers.iter().map(|n| n * 2).collect();", "Iterators are lazy until `collect` builds the new Vec."),
        "convert a string to an integer": ("let n: i32 = \"42\".parse()?;", "`parse` returns a Result, so handle the error or propagate it with `?`."),
    },
}
PHRASES = ["How do I {op} in {lang}?", "What's the idiomatic way to {op} in {lang}?", "In {lang}, how can I {op}?"]

CONCEPTS = [
    ("What does `git stash` do?", "`git stash` saves your uncommitted changes on a stack and cleans the working tree. Run `git stash pop` to bring the changes back when you are ready."),
    ("How do I undo my last commit but keep the changes?", "Run `git reset --soft HEAD~1`. The commit is removed from the branch and its changes stay staged, ready to be committed again."),
    ("How do I create a new branch and switch to it?", "Use `git switch -c feature-login`. On older versions of git the same thing is `git checkout -b feature-login`."),
    ("What is the difference between `git merge` and `git rebase`?", "Merge joins two histories with a merge commit and keeps them as they were. Rebase replays your commits on top of another branch, which gives a straight history but rewrites commit ids, so avoid rebasing shared branches."),
    ("How do I see which files changed in the last commit?", "Run `git show --stat HEAD` to list the changed files with a count of added and removed lines."),
    ("How do I find all files named config.yaml under the current folder?", "Use `find . -name config.yaml`. Add `-type f` to match only regular files."),
    ("How do I count the lines of a file in the shell?", "Run `wc -l notes.txt`. It prints the number of newline characters followed by the file name."),
    ("How can I see which process is listening on port 8000?", "On Linux run `ss -ltnp 'sport = :8000'` or `lsof -i :8000`. Both show the process id and the command name."),
    ("How do I search for a word in all Python files of a project?", "Use `grep -rn --include='*.py' 'word' .` which prints each match with its file name and line number."),
    ("What does `chmod +x script.sh` do?", "It adds the execute permission to the file, so you can run it directly with `./script.sh`."),
    ("How do I select the ten most recent orders in SQL?", "Sort by the date and limit the result: `SELECT * FROM orders ORDER BY created_at DESC LIMIT 10;`"),
    ("How do I count rows per customer in SQL?", "Group by the customer: `SELECT customer_id, COUNT(*) FROM orders GROUP BY customer_id;`"),
    ("What is the difference between INNER JOIN and LEFT JOIN?", "An INNER JOIN keeps only rows that match in both tables. A LEFT JOIN keeps every row of the left table and fills the columns of the right table with NULL when there is no match."),
    ("Why should I use parameterized queries?", "They send the values separately from the SQL text, so user input can never change the query. That prevents SQL injection and lets the database reuse the query plan."),
    ("What is an index in a database?", "An index is a sorted structure over one or more columns that lets the database find rows without scanning the whole table. It speeds up reads and slightly slows down writes."),
    ("What is a Python virtual environment?", "A virtual environment is a folder with its own Python interpreter and packages. Create one with `python -m venv .venv` and activate it so projects do not share dependencies."),
    ("What does the `@property` decorator do in Python?", "It turns a method into a read-only attribute, so `circle.area` calls the method without parentheses. Add a setter with `@area.setter` when the value may be assigned."),
    ("What is the difference between a list and a tuple in Python?", "Lists are mutable and tuples are immutable. Tuples can be dictionary keys and signal that the data should not change."),
    ("What does `async`/`await` do in JavaScript?", "An `async` function always returns a Promise, and `await` pauses that function until a Promise settles, without blocking the rest of the program."),
    ("What is a race condition?", "A race condition happens when the result depends on the timing of two threads or processes that touch the same data. Locks, transactions or atomic operations remove it."),
    ("What is the difference between `==` and `===` in JavaScript?", "`===` compares value and type without conversion, while `==` converts types first, so `0 == ''` is true but `0 === ''` is false. Prefer `===`."),
    ("What does HTTP status 404 mean?", "404 Not Found means the server has nothing at that URL. It is a client error: the request was well formed but the resource does not exist."),
    ("What does HTTP status 429 mean?", "429 Too Many Requests means you hit a rate limit. Wait for the time in the Retry-After header before sending more requests."),
    ("What is a unit test?", "A unit test checks one small piece of code, such as a function, in isolation. It should be fast, repeatable and fail with a clear message when behaviour changes."),
    ("What is the time complexity of looking up a key in a hash map?", "On average it is O(1) because the key's hash points straight at a bucket. In the worst case, with many collisions, it degrades to O(n)."),
]

LOCATIONS = [("in", "a ruined watchtower"), ("in", "the flooded crypt"), ("on", "a misty forest road"),
             ("in", "the goblin warrens"), ("on", "a frozen mountain pass"), ("in", "the sunken temple"),
             ("in", "a crowded harbor market"), ("in", "the abandoned mine"), ("at", "an elven shrine"),
             ("in", "the dragon's foothills")]
MONSTERS = [("goblin", "a rusty scimitar", 7), ("skeleton", "a cracked shortsword", 13), ("wolf", "its snapping jaws", 11),
            ("bandit", "a heavy crossbow", 11), ("ogre", "a tree-trunk club", 59), ("giant spider", "venomous fangs", 26),
            ("orc", "a notched greataxe", 15), ("zombie", "rotting fists", 22), ("harpy", "sharp talons", 38),
            ("cultist", "a curved dagger", 9)]
HEROES = [("Sara", "fighter"), ("Elara", "wizard"), ("Thorn", "ranger"), ("Brom", "cleric"), ("Nix", "rogue"), ("Kael", "paladin")]
ACTIONS = [
    ("I draw my sword and charge the {m}.", "{h} charges across {l}, steel flashing. Roll a d20 and add your attack bonus; the {m} looks ready to parry with {w}."),
    ("I sneak around to flank the {m}.", "{h} slips through the shadows of {l}. Make a Stealth check; if you beat the {m}'s passive Perception, your next attack has advantage."),
    ("I try to talk the {m} into surrendering.", "The {m} hesitates, {w} lowered a few inches. Make a Persuasion check. On a success it drops its weapon and begs for mercy."),
    ("I cast a spell at the {m}.", "Arcane light gathers around {h}'s hands as the echoes of {l} fall silent. Tell me which spell you cast and roll for the attack or ask the {m} to make its save."),
    ("I search the room for traps.", "{h} studies the floor of {l} inch by inch. Roll Investigation. A faint scratch on the stones hints that something here has been moved recently."),
    ("I look for a way to escape.", "{h} scans {l} for an exit while the {m} closes in with {w}. You spot a narrow gap behind a fallen beam; reaching it takes your whole movement."),
]


def programming_examples(rng):
    out = []
    for lang, ops in SNIPPETS.items():
        for op, (code, why) in ops.items():
            q = rng.choice(PHRASES).format(op=op, lang=lang)
            fence = lang.lower() if lang != "Go" else "go"
            answer = f"{why}\n\n```{fence}\n{code}\n```"
            msgs = [{"role": "user", "content": q}, {"role": "assistant", "content": answer}]
            if rng.random() < 0.5:
                msgs.insert(0, {"role": "system", "content": SYSTEM_CODE})
            out.append({"messages": msgs})
    for q, a in CONCEPTS:
        out.append({"messages": [{"role": "system", "content": SYSTEM_CODE}, {"role": "user", "content": q},
                                 {"role": "assistant", "content": a}]})
    return out


def dnd_examples(rng, n):
    out = []
    seen = set()
    while len(out) < n:
        prep, loc = rng.choice(LOCATIONS)
        m, w, hp = rng.choice(MONSTERS)
        h, cls = rng.choice(HEROES)
        act, resp = rng.choice(ACTIONS)
        key = (loc, m, h, act)
        if key in seen:
            continue
        seen.add(key)
        opening = (f"We are {prep} {loc}. I'm {h}, the {cls}. A {m} blocks the way.")
        user = f"{opening} {act.format(m=m)}"
        dm = resp.format(h=h, l=loc, m=m, w=w)
        follow_user = rng.choice(["I rolled a 17.", "I rolled a 4.", "I rolled a natural 20!", "I rolled a 12."])
        roll = int("".join(ch for ch in follow_user if ch.isdigit()))
        if roll >= 15:
            dm2 = (f"Success! {h} gets the upper hand. The {m} (about {hp} hit points) staggers back, and the way "
                   f"onward from {loc} opens up. What do you do next?")
        elif roll >= 10:
            dm2 = (f"A partial success. {h} gains ground, but the {m} recovers quickly and swings {w} at you. "
                   "Roll a Dexterity saving throw.")
        else:
            dm2 = (f"Not this time. The {m} sees it coming and strikes back with {w}. Take 5 damage and tell me "
                   "how you respond.")
        msgs = [{"role": "system", "content": SYSTEM_DM}, {"role": "user", "content": user},
                {"role": "assistant", "content": dm}, {"role": "user", "content": follow_user},
                {"role": "assistant", "content": dm2}]
        out.append({"messages": msgs})
    return out


def build() -> list[dict]:
    rng = random.Random(20240611)
    examples = programming_examples(rng) + dnd_examples(rng, 200)
    rng.shuffle(examples)
    return examples


if __name__ == "__main__":
    rows = build()
    with open(OUT, "w", encoding="utf-8") as fh:
        for row in rows:
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")
    print(f"wrote {len(rows)} examples to {OUT}")
