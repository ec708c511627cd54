"""What every benchmark here prints the same way: the commit it measured, and a goal's verdict."""
import subprocess
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
