"""What every benchmark here prints the same way: the commit it measured, and a goal's verdict; and how an engine's run is
measured in a fresh process of its own."""
import json, subprocess, sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def git_commit() -> str:
    "The commit measured, and whether src/ differs from it."
    try:
        run = lambda *a: subprocess.run(['git', *a], cwd=HERE, capture_output=True, text=True, timeout=10).stdout.strip()
        head = run('rev-parse', '--short', 'HEAD')
        return head + (' with uncommitted changes in src/' if run('status', '--porcelain', '--', str(HERE.parent / 'src')) else '') if head else 'unknown'
    except (OSError, subprocess.SubprocessError): return 'unknown'


def verdict(ok: bool) -> str: return 'PASS' if ok else 'FAIL'


def run_child(script, kind: str, args: list, tmp: Path) -> dict | None:
    """Run `script --child KIND ARGS --out FILE` in a fresh Python process (its stderr kept in TMP/KIND.log) and return the JSON
    it wrote; None, with the failure's last error line printed, when it failed."""
    out, log = tmp / f'{kind}.json', tmp / f'{kind}.log'
    with open(log, 'w') as err:
        p = subprocess.run([sys.executable, str(script), '--child', kind, *map(str, args), '--out', str(out)], stderr=err)
    if p.returncode:
        lines = [l for l in log.read_text(errors='replace').splitlines() if 'Error' in l or 'Exception' in l]
        print(f'{kind} failed (exit {p.returncode}): {lines[-1][:300] if lines else "see its log"}')
        return None
    return json.loads(out.read_text())
