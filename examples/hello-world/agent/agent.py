"""A scripted stand-in for an LLM agent: reads the task Keystone gives it and does the work."""

import os
import re

task = os.environ["KEYSTONE_TASK"]
name = re.search(r"file called (\S+)", task).group(1)
text = re.search(r"text '([^']*)'", task).group(1)
with open(os.path.join(os.environ["WORKSPACE"], name), "w") as handle:
    handle.write(text + "\n")
print(f"wrote {name}")
