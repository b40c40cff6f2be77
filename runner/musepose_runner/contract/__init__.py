"""What crosses between the operator and the runner: the job contract, the location rules, the original payload, the errors that end a run. Pure; pydantic only."""
