"""GoalStore's use cases as Model Context Protocol tools (DESIGN §14), for agents.

One server definition (server.py: the tools of tools.py over the arguments of
args.py, resources, errors.py's problems, scope filtering), two transports: stdio
(stdio.py, `goalstore mcp`) and Streamable HTTP at /mcp in the web app (http.py).
docs/mcp.md is the user's guide.
"""
