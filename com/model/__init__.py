"""Pure data, importing nothing else of com: events and their validation, test results, filters, errors."""
