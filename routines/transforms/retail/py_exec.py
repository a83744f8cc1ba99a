"""Transform for the retail trade survey, in the notebook's py_exec contract.

lakerun (like the notebook) puts this folder on sys.path, imports py_exec and calls
main(parent_directory, dump_directory, **py_exec_args).
"""
import csv
import os


def main(parent_directory, dump_directory, min_period="0000.00"):
    """Keeps rows from min_period on, and writes each CSV as <name>.filtered.csv under dump_directory."""
    for root, _dirs, files in os.walk(parent_directory):
        for name in sorted(files):
            if not name.endswith(".csv"):
                continue
            source = os.path.join(root, name)
            relative = os.path.relpath(source, parent_directory)
            target = os.path.join(dump_directory, relative[: -len(".csv")] + ".filtered.csv")
            os.makedirs(os.path.dirname(target), exist_ok=True)
            kept = 0
            with open(source, newline="") as src, open(target, "w", newline="") as out:
                reader = csv.DictReader(src)
                writer = csv.DictWriter(out, fieldnames=reader.fieldnames)
                writer.writeheader()
                for row in reader:
                    if row["Period"] >= min_period:
                        writer.writerow(row)
                        kept += 1
            print(f"{relative}: kept {kept} rows")
