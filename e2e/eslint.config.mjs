// Lint of the web client (signaling/src/web) and of the browser tests (e2e), run by
// e2e/lint.sh from the repository root (scripts/test.sh runs it).
import js from '@eslint/js';
import globals from 'globals';

export default [
  { ignores: ['target/**', '**/node_modules/**', 'e2e/artifacts/**', 'fuzz/**'] },
  js.configs.recommended,
  {
    rules: {
      eqeqeq: ['error', 'always'],
      'no-var': 'error',
      'prefer-const': 'error',
      'no-shadow': 'error',
      'no-unused-vars': ['error', { argsIgnorePattern: '^_' }],
      'no-implicit-globals': 'error',
      'no-eval': 'error',
      'no-implied-eval': 'error',
      // The page shows names and chat from other people: never as HTML.
      'no-restricted-properties': ['error',
        { property: 'innerHTML', message: 'Use textContent: the page never renders text from others as HTML.' },
        { property: 'outerHTML', message: 'Use textContent: the page never renders text from others as HTML.' }],
      'no-restricted-syntax': ['error',
        { selector: "CallExpression[callee.property.name='insertAdjacentHTML']", message: 'Use textContent.' }],
    },
  },
  {
    files: ['signaling/src/web/**/*.js'],
    languageOptions: { sourceType: 'module', globals: { ...globals.browser } },
  },
  {
    files: ['e2e/**/*.mjs'],
    // Page functions passed to evaluate() run in the browser.
    languageOptions: { sourceType: 'module', globals: { ...globals.node, ...globals.browser } },
  },
];
