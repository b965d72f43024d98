"""The consistency filter on real text: it must catch wrong pairs injected into a clean set.

Sixty small, distinctive documented functions; 10% shuffled (query of one,
code of another) pairs are added. With the packaged MiniLM and the default
k and threshold, at least 90% of the injected pairs must go and at least 70%
of the clean ones stay. The same data then runs through the ``filter`` and
``negatives`` commands end to end.
"""

from __future__ import annotations

import json

import numpy as np
from click.testing import CliRunner

from cornstack_train.data.filtering import DEFAULT_THRESHOLD, DEFAULT_TOP_K, consistency_filter, inject_shuffled
from cornstack_train.data.records import PAIR_COLUMNS, load_stage, save_stage
from cornstack_train.data.stages import filter_command, negatives_command
from cornstack_train.data.vectors import EmbedderEncoder

PAIRS: list[tuple[str, str]] = [
    ("Return the area of a circle with the given radius.", "def circle_area(radius):\n    return math.pi * radius ** 2"),
    ("Convert a temperature from Celsius to Fahrenheit.", "def celsius_to_fahrenheit(c):\n    return c * 9 / 5 + 32"),
    ("Check whether a string reads the same forwards and backwards.", "def is_palindrome(s):\n    s = s.lower()\n    return s == s[::-1]"),
    ("Count the vowels in a word.", "def count_vowels(word):\n    return sum(1 for ch in word.lower() if ch in 'aeiou')"),
    ("Compute the factorial of n recursively.", "def factorial(n):\n    if n <= 1:\n        return 1\n    return n * factorial(n - 1)"),
    ("Return the n-th Fibonacci number.", "def fibonacci(n):\n    a, b = 0, 1\n    for _ in range(n):\n        a, b = b, a + b\n    return a"),
    ("Read a JSON file and return the parsed object.", "def load_json(path):\n    with open(path) as fh:\n        return json.load(fh)"),
    ("Write rows to a CSV file with a header line.", "def write_csv(path, header, rows):\n    with open(path, 'w', newline='') as fh:\n        writer = csv.writer(fh)\n        writer.writerow(header)\n        writer.writerows(rows)"),
    ("Send an HTTP GET request and return the response body.", "def http_get(url):\n    response = requests.get(url, timeout=10)\n    response.raise_for_status()\n    return response.text"),
    ("Compute the SHA-256 hex digest of a file.", "def file_sha256(path):\n    digest = hashlib.sha256()\n    with open(path, 'rb') as fh:\n        digest.update(fh.read())\n    return digest.hexdigest()"),
    ("Remove duplicate items from a list while keeping their order.", "def unique_in_order(items):\n    seen = set()\n    return [x for x in items if not (x in seen or seen.add(x))]"),
    ("Flatten a nested list of lists into one list.", "def flatten(nested):\n    return [item for sub in nested for item in sub]"),
    ("Split a list into chunks of a fixed size.", "def chunks(items, size):\n    return [items[i:i + size] for i in range(0, len(items), size)]"),
    ("Merge two dictionaries, the second one winning on conflicts.", "def merge_dicts(a, b):\n    merged = dict(a)\n    merged.update(b)\n    return merged"),
    ("Return the largest number in a list.", "def maximum(numbers):\n    best = numbers[0]\n    for n in numbers:\n        if n > best:\n            best = n\n    return best"),
    ("Compute the arithmetic mean of some numbers.", "def mean(values):\n    return sum(values) / len(values)"),
    ("Check whether a number is prime.", "def is_prime(n):\n    if n < 2:\n        return False\n    return all(n % d for d in range(2, int(n ** 0.5) + 1))"),
    ("Compute the greatest common divisor of two integers.", "def gcd(a, b):\n    while b:\n        a, b = b, a % b\n    return a"),
    ("Reverse the order of words in a sentence.", "def reverse_words(sentence):\n    return ' '.join(reversed(sentence.split()))"),
    ("Capitalize the first letter of every word.", "def title_case(text):\n    return ' '.join(w[:1].upper() + w[1:] for w in text.split())"),
    ("Validate an email address with a regular expression.", "def is_valid_email(address):\n    return re.fullmatch(r'[^@\\s]+@[^@\\s]+\\.[a-z]+', address) is not None"),
    ("Parse an ISO 8601 date string into a date object.", "def parse_date(text):\n    return datetime.date.fromisoformat(text)"),
    ("Return the number of days between two dates.", "def days_between(start, end):\n    return abs((end - start).days)"),
    ("Sleep and retry a function until it succeeds or attempts run out.", "def retry(func, attempts=3, delay=1.0):\n    for i in range(attempts):\n        try:\n            return func()\n        except Exception:\n            time.sleep(delay)\n    raise RuntimeError('all attempts failed')"),
    ("Create a directory and its parents if they do not exist.", "def ensure_dir(path):\n    os.makedirs(path, exist_ok=True)\n    return path"),
    ("List all files with a given extension under a directory.", "def find_files(root, ext):\n    return [os.path.join(d, f) for d, _, fs in os.walk(root) for f in fs if f.endswith(ext)]"),
    ("Compress a file with gzip.", "def gzip_file(src, dst):\n    with open(src, 'rb') as fin, gzip.open(dst, 'wb') as fout:\n        shutil.copyfileobj(fin, fout)"),
    ("Encode bytes as a base64 string.", "def to_base64(data):\n    return base64.b64encode(data).decode('ascii')"),
    ("Generate a random password of the given length.", "def random_password(length=12):\n    alphabet = string.ascii_letters + string.digits\n    return ''.join(secrets.choice(alphabet) for _ in range(length))"),
    ("Sort a list of people by their age.", "def sort_by_age(people):\n    return sorted(people, key=lambda p: p.age)"),
    ("Group words by their first letter.", "def group_by_initial(words):\n    groups = {}\n    for w in words:\n        groups.setdefault(w[0], []).append(w)\n    return groups"),
    ("Count how often each word occurs in a text.", "def word_frequencies(text):\n    return collections.Counter(text.lower().split())"),
    ("Binary search for a value in a sorted list.", "def binary_search(items, target):\n    lo, hi = 0, len(items) - 1\n    while lo <= hi:\n        mid = (lo + hi) // 2\n        if items[mid] == target:\n            return mid\n        if items[mid] < target:\n            lo = mid + 1\n        else:\n            hi = mid - 1\n    return -1"),
    ("Transpose a matrix given as a list of rows.", "def transpose(matrix):\n    return [list(row) for row in zip(*matrix)]"),
    ("Multiply two matrices.", "def matmul(a, b):\n    return [[sum(x * y for x, y in zip(row, col)) for col in zip(*b)] for row in a]"),
    ("Compute the Euclidean distance between two points.", "def distance(p, q):\n    return math.sqrt((p[0] - q[0]) ** 2 + (p[1] - q[1]) ** 2)"),
    ("Clamp a value between a lower and an upper bound.", "def clamp(value, low, high):\n    return max(low, min(value, high))"),
    ("Convert a hex color code to an RGB tuple.", "def hex_to_rgb(color):\n    color = color.lstrip('#')\n    return tuple(int(color[i:i + 2], 16) for i in (0, 2, 4))"),
    ("Strip HTML tags from a string.", "def strip_tags(html):\n    return re.sub(r'<[^>]+>', '', html)"),
    ("Turn a title into a URL slug.", "def slugify(title):\n    slug = re.sub(r'[^a-z0-9]+', '-', title.lower())\n    return slug.strip('-')"),
    ("Truncate a string and add an ellipsis when it is too long.", "def truncate(text, limit):\n    if len(text) <= limit:\n        return text\n    return text[:limit - 3] + '...'"),
    ("Open a SQLite database and create the users table.", "def init_db(path):\n    conn = sqlite3.connect(path)\n    conn.execute('CREATE TABLE IF NOT EXISTS users (id INTEGER PRIMARY KEY, name TEXT)')\n    return conn"),
    ("Insert a new user row into the database.", "def add_user(conn, name):\n    conn.execute('INSERT INTO users (name) VALUES (?)', (name,))\n    conn.commit()"),
    ("Measure how long a function call takes.", "def timed(func, *args):\n    start = time.perf_counter()\n    result = func(*args)\n    return result, time.perf_counter() - start"),
    ("Cache the results of a function by its arguments.", "def memoize(func):\n    cache = {}\n    def wrapper(*args):\n        if args not in cache:\n            cache[args] = func(*args)\n        return cache[args]\n    return wrapper"),
    ("Read environment variable as an integer with a default.", "def env_int(name, default=0):\n    value = os.environ.get(name)\n    return int(value) if value is not None else default"),
    ("Configure logging to print debug messages to the console.", "def setup_logging():\n    logging.basicConfig(level=logging.DEBUG, format='%(levelname)s %(message)s')"),
    ("Parse command line arguments for input and output files.", "def parse_args(argv):\n    parser = argparse.ArgumentParser()\n    parser.add_argument('input')\n    parser.add_argument('output')\n    return parser.parse_args(argv)"),
    ("Resize an image to a thumbnail of at most 128 pixels.", "def make_thumbnail(image):\n    image = image.copy()\n    image.thumbnail((128, 128))\n    return image"),
    ("Shuffle a deck of playing cards.", "def shuffle_deck():\n    deck = [r + s for r in 'A23456789TJQK' for s in 'SHDC']\n    random.shuffle(deck)\n    return deck"),
    ("Roll two six-sided dice and return their sum.", "def roll_dice():\n    return random.randint(1, 6) + random.randint(1, 6)"),
    ("Compute compound interest on a principal amount.", "def compound_interest(principal, rate, years):\n    return principal * (1 + rate) ** years"),
    ("Convert kilometers to miles.", "def km_to_miles(km):\n    return km * 0.621371"),
    ("Check whether a year is a leap year.", "def is_leap_year(year):\n    return year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)"),
    ("Return the file extension of a path.", "def extension(path):\n    return os.path.splitext(path)[1]"),
    ("Zip two lists into a dictionary.", "def to_dict(keys, values):\n    return dict(zip(keys, values))"),
    ("Find the longest common prefix of several strings.", "def common_prefix(strings):\n    return os.path.commonprefix(strings)"),
    ("Rotate a list to the left by k positions.", "def rotate_left(items, k):\n    k %= len(items)\n    return items[k:] + items[:k]"),
    ("Serialize an object to a pretty-printed YAML string.", "def to_yaml(obj):\n    return yaml.safe_dump(obj, indent=2, sort_keys=True)"),
    ("Return the current UTC time as an ISO formatted string.", "def utc_now_iso():\n    return datetime.datetime.now(datetime.timezone.utc).isoformat()"),
]


def test_sixty_distinct_pairs():
    assert len(PAIRS) == 60
    assert len({q for q, _ in PAIRS}) == 60 and len({c for _, c in PAIRS}) == 60


def test_filter_removes_injected_shuffled_pairs(minilm):
    encoder = EmbedderEncoder(minilm)
    q = encoder.encode_queries([p[0] for p in PAIRS])
    c = encoder.encode_codes([p[1] for p in PAIRS])
    query_rows, code_rows, injected = inject_shuffled(len(PAIRS), 0.1, seed=3)
    assert injected.sum() == 6 and not np.any(query_rows[injected] == code_rows[injected])
    result = consistency_filter(q[query_rows], c, code_rows, top_k=DEFAULT_TOP_K, threshold=DEFAULT_THRESHOLD)
    removed = 1.0 - result.keep[injected].mean()
    kept = result.keep[~injected].mean()
    assert removed >= 0.9, f"only {removed:.0%} of injected pairs removed"
    assert kept >= 0.7, f"only {kept:.0%} of clean pairs kept"


def _rows(pairs: list[tuple[str, str]]) -> dict[str, list[str]]:
    rows = []
    for i, (q, c) in enumerate(pairs):
        rows.append({"id": f"r{i}", "query": q, "positive": c, "kind": "docstring", "language": "python",
                     "repo": "test/samples", "path": "samples.py", "name": c.split("(")[0][4:], "source": "test"})
    return {col: [r[col] for r in rows] for col in PAIR_COLUMNS}


def test_filter_and_negatives_commands(tmp_path):
    from datasets import Dataset

    # Ten wrong pairs among the sixty: each query gets another function's code.
    pairs = list(PAIRS) + [(PAIRS[i][0], PAIRS[(i + 7) % 60][1]) for i in range(0, 60, 6)]
    mined = save_stage(Dataset.from_dict(_rows(pairs)), tmp_path / "mined", {"stage": "mine"})
    cache = tmp_path / "cache"
    runner = CliRunner()
    res = runner.invoke(filter_command, [str(mined), "-o", str(tmp_path / "filtered"), "--cache-dir",
                                         str(cache), "--device", "cpu"])
    assert res.exit_code == 0, res.output
    filtered = load_stage(tmp_path / "filtered", require=PAIR_COLUMNS + ("filter_score", "filter_rank"))
    kept_ids = set(filtered["id"])
    assert not kept_ids & {f"r{i}" for i in range(60, 70)}, "a wrong pair survived"
    assert len(kept_ids) >= 42
    assert all(r <= DEFAULT_TOP_K for r in filtered["filter_rank"])
    stats = json.loads((tmp_path / "filtered" / "stats.json").read_text())
    assert stats["pairs_in"] == 70 and stats["pairs_kept"] == len(kept_ids)

    # A finished output is skipped, not redone.
    again = runner.invoke(filter_command, [str(mined), "-o", str(tmp_path / "filtered")])
    assert again.exit_code == 0 and "already complete" in again.output

    res = runner.invoke(negatives_command, [str(tmp_path / "filtered"), "-o", str(tmp_path / "neg"),
                                            "--cache-dir", str(cache), "--top-n", "5", "--device", "cpu"])
    assert res.exit_code == 0, res.output
    neg = load_stage(tmp_path / "neg", require=PAIR_COLUMNS + ("negative_ids", "negative_scores"))
    for row in neg:
        assert 0 < len(row["negative_ids"]) <= 5
        assert row["id"] not in row["negative_ids"]
        assert set(row["negative_ids"]) <= kept_ids
        assert row["negative_scores"] == sorted(row["negative_scores"], reverse=True)
        assert all(s < 0.95 * row["filter_score"] + 1e-6 for s in row["negative_scores"])


def test_filter_command_bad_input(tmp_path):
    res = CliRunner().invoke(filter_command, [str(tmp_path / "nope"), "-o", str(tmp_path / "out")])
    assert res.exit_code != 0
    assert "does not exist" in res.output


def test_filter_backend_bf16_has_its_own_cache_and_agrees_with_fp32(tmp_path):
    """--backend reaches the data stages' encoder: bf16 vectors are cached apart from fp32 ones
    (never mixed) and, at cosine ~0.9999 to them, keep the same pairs."""
    from datasets import Dataset

    mined = save_stage(Dataset.from_dict(_rows(PAIRS)), tmp_path / "mined", {"stage": "mine"})
    cache = tmp_path / "cache"
    runner = CliRunner()
    kept = {}
    for backend in ("torch", "torch-bf16"):
        out = tmp_path / f"filtered-{backend}"
        res = runner.invoke(filter_command, [str(mined), "-o", str(out), "--cache-dir", str(cache),
                                             "--device", "cpu", "--backend", backend])
        assert res.exit_code == 0, res.output
        kept[backend] = set(load_stage(out)["id"])
        stats = json.loads((out / "stats.json").read_text())
        assert stats["config"]["backend"] == backend
        assert ("backend=torch-bf16" in stats["model_identity"]) == (backend == "torch-bf16")
    assert len([d for d in cache.iterdir() if d.is_dir()]) == 2, "bf16 and fp32 vectors share a cache entry"
    assert len(kept["torch"] ^ kept["torch-bf16"]) <= 2
