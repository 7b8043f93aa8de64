"""Operating a deployed or local stack: dead-letter queue, warming cost advice, prices, audit."""
