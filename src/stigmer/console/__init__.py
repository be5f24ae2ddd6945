"""The web console: watch, steer and compare executions in a browser.

A client of the gRPC API through the async SDK, like the CLI (app.py says
how it is put together, serving.py how it runs, live.py how pages follow
an execution as it runs). `stigmer server` starts one beside itself;
`stigmer console` runs one for any server.
"""
